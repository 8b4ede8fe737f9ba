"""Sequence log-probs (docs/ALGORITHM.md#notation) and the token layout they are computed on."""

from __future__ import annotations

import shutil

import pytest
import torch

from grpo_core.lm.batching import (
    CHOSEN,
    FIRST,
    PROMPT,
    REJECTED,
    SECOND,
    SequenceBatch,
    collate_pairs,
    length_chunks,
    pair_rows,
)
from grpo_core.lm.config import TinyModelConfig
from grpo_core.lm.dataset import TokenizedPair, tokenize_pairs
from grpo_core.lm.logprobs import kept_positions, target_logps
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


def test_target_logps_by_hand():
    # given: one row [p0, p1, r0, eos] over a 3-token vocabulary, logits at every position
    logits = torch.tensor([[[0.0, 1.0, 2.0], [1.0, 0.0, 0.0], [0.0, 0.0, 3.0], [5.0, 5.0, 5.0]]])
    (pair,) = [TokenizedPair("p", (0, 1), (2, 0), (1, 0))]
    rows = collate_pairs([pair], pad_token_id=0, encoding="separate", group_by_length=False)
    chunk = rows.chunks[0]  # the chosen row [0, 1, 2, 0]
    # when
    logps = target_logps(logits, SequenceBatch(*(t[:1] for t in _fields(chunk))))
    # then: token 2 predicted at position 1, token 0 (EOS) at position 2; the prompt is not scored
    expected = torch.log_softmax(logits[0, 1], -1)[2] + torch.log_softmax(logits[0, 2], -1)[0]
    assert logps.dtype == torch.float32
    assert torch.allclose(logps.sum(), expected), f"expected {expected}, got {logps}"


def _fields(chunk):
    return [getattr(chunk, f) for f in chunk.__dataclass_fields__]


def test_a_shared_row_scores_the_rejected_response_from_the_prompt_by_hand():
    # given: prompt (7, 8), chosen (5, 2), rejected (6, 9, 2)
    pair = TokenizedPair("p", (7, 8), (5, 2), (6, 9, 2))
    # when
    (row,) = pair_rows(pair, 0, "shared_prompt")
    # then: [x, y_w, y_l]; y_l's positions continue from the prompt, its first token is predicted
    # at the prompt's last position (1), its later ones at its own previous tokens (4, 5)
    assert row.tokens == (7, 8, 5, 2, 6, 9, 2)
    assert row.positions == (0, 1, 2, 3, 2, 3, 4)
    assert row.segments == (PROMPT, PROMPT, FIRST, FIRST, SECOND, SECOND, SECOND)
    assert row.targets == (
        (5, 1, 0, CHOSEN), (2, 2, 0, CHOSEN),
        (6, 1, 0, REJECTED), (9, 4, 0, REJECTED), (2, 5, 0, REJECTED),
    )  # fmt: skip


def test_the_attention_mask_keeps_the_responses_apart_by_hand():
    pair = TokenizedPair("p", (7, 8), (5,), (6,))
    other = TokenizedPair("q", (7,), (5,), (6,))
    chunk = collate_pairs([pair, other], 0, group_by_length=False).chunks[0]
    mask = chunk.attention_mask()[:, 0].int()
    assert mask.shape == (2, 4, 4)
    # row 0 = [7, 8, 5 | 6]: 6 sees the prompt and itself, not 5
    assert mask[0].tolist() == [[1, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0], [1, 1, 0, 1]]
    # row 1 = [7, 5 | 6, pad]: the padding position attends to itself only
    assert mask[1].tolist() == [[1, 0, 0, 0], [1, 1, 0, 0], [1, 0, 1, 0], [0, 0, 0, 1]]


def test_kept_positions_are_the_union_of_the_predicting_positions():
    pairs = [TokenizedPair("a", (1, 2), (3,), (4,)), TokenizedPair("b", (1, 2, 3), (3,), (4,))]
    chunk = collate_pairs(pairs, 0, group_by_length=False).chunks[0]
    assert kept_positions(chunk).tolist() == [1, 2]


def test_length_grouping_minimises_padding_plus_a_cost_per_pass_by_hand():
    # one pass: 4 * 52 + 64 = 272; two passes [10, 11] and [50, 52]: 86 + 168 = 254; four: 379
    assert length_chunks([50, 10, 52, 11], forward_cost=64) == [[1, 3], [0, 2]]
    assert length_chunks([5, 6, 7], forward_cost=1000) == [[0, 1, 2]]
    assert length_chunks([5, 600], forward_cost=0) == [[0], [1]]


def test_the_chunk_cost_sets_the_passes_of_a_minibatch_and_enters_the_layout_only_off_default():
    # given: three pairs whose shared rows are 4, 5 and 40 tokens long
    from grpo_core.lm.dataset import LMPairDataset

    pairs = [
        TokenizedPair("a", (1, 2), (3,), (4,)),
        TokenizedPair("b", (1, 2, 3), (3,), (4,)),
        TokenizedPair("c", (1,) * 38, (3,), (4,)),
    ]

    def dataset(cost):
        return LMPairDataset(pairs, torch.zeros(3), 1, 0, chunk_cost_tokens=cost)

    everything = torch.arange(3)
    # when / then: at cost 64, [4, 5] and [40] (2*5 + 40 + 128 = 178 < 3*40 + 64 = 184); at 1024 one
    assert [c.input_ids.shape[0] for c in dataset(64).batch(everything).inputs.chunks] == [2, 1]
    assert [c.input_ids.shape[0] for c in dataset(1024).batch(everything).inputs.chunks] == [3]
    assert "chunk_cost_tokens" not in dataset(64).layout  # older cache keys stay valid
    assert dataset(1024).layout["chunk_cost_tokens"] == 1024


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


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_every_layout_gives_the_log_probs_of_a_hand_gather_over_separate_sequences(tiny, attention):
    # given: three pairs of different lengths, the model with either attention implementation
    _, tokenizer = tiny
    model, _ = tiny
    model = type(model).from_pretrained(model.name_or_path, attn_implementation=attention)
    pairs = tokenize_pairs(
        ["a", "b", "c"], [TEXTS[0], "people in Northland", "Northland"], ["A", "B", "A B"],
        ["B A", "A", "B"], tokenizer, max_length=64,
    )  # fmt: skip
    policy = CausalLMPolicy(model, device="cpu").train(False)
    # the reference: each response in its own unpadded sequence, summed by hand over full logits
    hand = torch.zeros(2, 3)
    with torch.no_grad():
        for i, pair in enumerate(pairs):
            for side, response in enumerate((pair.chosen, pair.rejected)):
                ids = torch.tensor([[*pair.prompt, *response]])
                log_probs = model(input_ids=ids).logits.float().log_softmax(-1)[0]
                start = len(pair.prompt)
                for t in range(start, ids.shape[1]):
                    hand[side, i] += log_probs[t - 1, ids[0, t]]
    # when / then: shared prompt or separate rows, grouped by length or not, agree to float tolerance
    for encoding in ("shared_prompt", "separate"):
        for grouped in (False, True):
            inputs = collate_pairs(
                pairs, tokenizer.pad_token_id, encoding=encoding, group_by_length=grouped
            )
            with torch.no_grad():
                chosen, rejected = policy.pair_logps(inputs)
            assert torch.allclose(torch.stack([chosen, rejected]), hand, atol=1e-4), (
                f"{encoding} grouped={grouped}: {torch.stack([chosen, rejected])} != {hand}"
            )


def test_the_shared_prompt_gives_the_same_gradients_as_separate_rows(tmp_path):
    # given: the same LoRA policy scoring the same pairs in both layouts
    from grpo_core.lm.config import LoraConfig
    from tests.lm.helpers import opinion_frames, tiny_policy_and_data

    frames = opinion_frames({"Northland": 6, "Southland": 4})
    grads = {}
    for encoding in ("shared_prompt", "separate"):
        policy, data, tokenizer = tiny_policy_and_data(
            tmp_path, frames, lora=LoraConfig(enabled=True, dropout=0.0)
        )
        data.encoding = encoding
        chosen, rejected = policy.pair_logps(data.batch(torch.arange(data.num_pairs)).inputs)
        (chosen - 2 * rejected).sum().backward()
        grads[encoding] = torch.cat([p.grad.flatten() for p in policy.trainable_parameters()])
    # then
    assert torch.allclose(grads["shared_prompt"], grads["separate"], atol=1e-5, rtol=1e-4)


@pytest.mark.skipif(
    not any(shutil.which(c) for c in ("c++", "g++", "clang++")),
    reason="torch.compile on a CPU needs a C++ compiler",
)
def test_a_compiled_policy_gives_the_log_probs_and_gradients_of_the_eager_one(tmp_path):
    # given: the same LoRA policy and pairs, eager and through torch.compile (two minibatches of
    # different shapes, so that the dynamic-shape graph serves more than the shape it was traced at)
    from grpo_core.lm.config import LoraConfig
    from tests.lm.helpers import opinion_frames, tiny_policy_and_data

    frames = opinion_frames({"Northland": 6, "Southland": 4})
    results = {}
    for compiled in (False, True):
        policy, data, _ = tiny_policy_and_data(
            tmp_path, frames, lora=LoraConfig(enabled=True, dropout=0.0)
        )
        if compiled:
            torch._dynamo.reset()
            torch._dynamo.utils.counters.clear()
            policy = CausalLMPolicy(policy.model, device="cpu", compile=True)
            layers = policy.model.get_base_model().get_decoder().layers
            assert all(layer._compiled_call_impl is not None for layer in layers)
        outputs = []
        for take in (torch.arange(data.num_pairs), torch.arange(3)):
            policy.model.zero_grad()
            chosen, rejected = policy.pair_logps(data.batch(take).inputs)
            (chosen - 2 * rejected).sum().backward()
            grad = torch.cat([p.grad.flatten() for p in policy.trainable_parameters()])
            outputs.append((chosen.detach(), rejected.detach(), grad))
        results[compiled] = outputs
    # the compiled run did go through dynamo
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] >= 1
    # then: the same numbers to float tolerance, for both shapes
    for (c0, r0, g0), (c1, r1, g1) in zip(results[False], results[True], strict=True):
        assert torch.allclose(c0, c1, atol=1e-5) and torch.allclose(r0, r1, atol=1e-5)
        assert torch.allclose(g0, g1, atol=1e-5, rtol=1e-4)
        assert g0.abs().sum() > 0


def test_compiling_on_a_cpu_without_a_cpp_compiler_is_refused_in_one_line(tiny, monkeypatch):
    # given: no C++ compiler on the PATH
    from grpo_core.lm import policy as policy_module

    monkeypatch.setattr(policy_module.shutil, "which", lambda name: None)
    model, _ = tiny
    # when / then: refused before anything is compiled
    with pytest.raises(ValueError, match="needs a C\\+\\+ compiler"):
        policy_module.compile_blocks(model)
    assert all(layer._compiled_call_impl is None for layer in model.model.layers)
