"""Sequence log-probs (spec section 1) and the token layout they are computed on."""

from __future__ import annotations

import pytest
import torch

from grpo_core.lm.config import TinyModelConfig
from grpo_core.lm.dataset import LMPairDataset, collate_pairs, tokenize_pairs
from grpo_core.lm.logprobs import gather_logps, scored_positions
from grpo_core.lm.policy import CausalLMPolicy, load_causal_lm
from grpo_core.lm.presets import tiny_model_dir

TEXTS = ["Opinion of people in Northland on: more money for roads?\nA. Yes\nB. No", "A", "B"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = tiny_model_dir(
        TinyModelConfig(hidden_size=32, num_heads=2, intermediate_size=64),
        TEXTS,
        64,
        tmp_path_factory.mktemp("cache"),
    )
    return load_causal_lm(folder)


def test_gather_logps_sums_response_tokens_only_by_hand():
    # given: one sequence [p0, p1, r0, eos] over a 3-token vocabulary, logits at every position
    logits = torch.tensor([[[0.0, 1.0, 2.0], [1.0, 0.0, 0.0], [0.0, 0.0, 3.0], [5.0, 5.0, 5.0]]])
    input_ids = torch.tensor([[0, 1, 2, 0]])
    response_mask = torch.tensor([[False, False, True, True]])
    # when
    logp = gather_logps(logits, input_ids, response_mask)
    # then: token 2 predicted at position 1, token 0 (EOS) at position 2; the prompt is not scored
    expected = torch.log_softmax(logits[0, 1], -1)[2] + torch.log_softmax(logits[0, 2], -1)[0]
    assert logp.dtype == torch.float32
    assert torch.equal(logp, expected.reshape(1)), f"expected {expected}, got {logp}"


def test_scored_positions_are_the_union_of_the_positions_before_response_tokens():
    mask = torch.tensor([[False, False, True, True, False], [False, True, True, False, False]])
    assert scored_positions(mask).tolist() == [0, 1, 2]


def test_tokenize_layout_prompt_then_response_then_eos(tiny):
    _, tokenizer = tiny
    # when
    (pair,) = tokenize_pairs(["p"], [TEXTS[0]], ["A"], ["B"], tokenizer, max_length=64)
    # then: BOS starts the prompt, responses end with EOS and carry no BOS
    assert pair.prompt[0] == tokenizer.bos_token_id
    assert pair.chosen == (tokenizer.convert_tokens_to_ids("A"), tokenizer.eos_token_id)
    assert pair.rejected == (tokenizer.convert_tokens_to_ids("B"), tokenizer.eos_token_id)


def test_long_prompts_are_cut_from_the_left_and_responses_never(tiny):
    _, tokenizer = tiny
    (full,) = tokenize_pairs(["p"], [TEXTS[0]], ["A"], ["B"], tokenizer, max_length=64)
    # when: room for 5 prompt tokens + "A" + EOS
    (cut,) = tokenize_pairs(["p"], [TEXTS[0]], ["A"], ["B A"], tokenizer, max_length=8)
    # then: the prompt keeps its last 8 - 3 tokens (the longest response is "B A" + EOS)
    assert cut.prompt == full.prompt[-5:]
    assert len(cut.prompt) + len(cut.rejected) == 8
    with pytest.raises(ValueError, match="pair long-one"):
        tokenize_pairs(["long-one"], [TEXTS[0]], ["A " * 8], ["B"], tokenizer, max_length=8)


def test_pairs_are_padded_right_with_chosen_rows_first(tiny):
    _, tokenizer = tiny
    pairs = tokenize_pairs(
        ["a", "b"], [TEXTS[0], "Northland"], ["A", "B"], ["B A", "A"], tokenizer, max_length=64
    )
    batch = collate_pairs(pairs, tokenizer.pad_token_id)
    assert batch.input_ids.shape[0] == 4
    lengths = [
        len(pairs[0].prompt) + 2,
        len(pairs[1].prompt) + 2,
        len(pairs[0].prompt) + 3,
        len(pairs[1].prompt) + 2,
    ]
    assert batch.attention_mask.sum(-1).tolist() == lengths
    assert batch.response_lengths.tolist() == [2, 2, 3, 2]
    for row, length in enumerate(lengths):  # padding only at the right end
        assert (
            batch.attention_mask[row, :length].all()
            and not batch.attention_mask[row, length:].any()
        )


def test_policy_logps_equal_a_hand_gather_over_full_logits_exactly(tiny):
    # given: two pairs of different lengths (so one row is padded)
    model, tokenizer = tiny
    pairs = tokenize_pairs(
        ["a", "b"],
        [TEXTS[0], "people in Northland"],
        ["A", "B"],
        ["B A", "A"],
        tokenizer,
        max_length=64,
    )
    dataset = LMPairDataset(pairs, torch.tensor([0, 1]), 2, tokenizer.pad_token_id)
    inputs = dataset.batch(torch.tensor([0, 1])).inputs
    policy = CausalLMPolicy(model, device="cpu").train(False)
    # when
    with torch.no_grad():
        chosen, rejected = policy.pair_logps(inputs)
        logits = model(input_ids=inputs.input_ids, attention_mask=inputs.attention_mask).logits
    # then: sum over response tokens of log_softmax(logits at t-1)[token t], float32, one loop by hand
    log_probs = logits.float().log_softmax(-1)
    hand = torch.zeros(4)
    for row in range(4):
        for t in range(1, inputs.input_ids.shape[1]):
            if inputs.response_mask[row, t]:
                hand[row] += log_probs[row, t - 1, inputs.input_ids[row, t]]
    assert torch.equal(torch.cat([chosen, rejected]), hand), (
        f"{torch.cat([chosen, rejected])} != {hand}"
    )
