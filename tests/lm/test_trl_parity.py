"""Loss parity with Hugging Face TRL's DPOTrainer (the `bench` extra; skipped without it).

The same tiny model scores the same token rows; TRL's sigmoid loss must equal our DPO loss, with
its robust loss our rDPO (TRL 1.16's sigmoid ignores label_smoothing, so cDPO has no TRL value), and TRL's IPO (which divides each log-ratio by
the completion length) our length-normalised IPO, to 1e-5.
"""

from __future__ import annotations

import pytest
import torch

from grpo_core.lm.batching import collate_pairs
from grpo_core.lm.dataset import tokenize_pairs
from grpo_core.lm.policy import CausalLMPolicy, load_causal_lm
from grpo_core.losses import flip_coefficients, ipo_loss, log_ratio_margin, pair_loss
from tests.lm.helpers import opinion_frames

trl = pytest.importorskip("trl", reason="TRL is the bench extra: pip install -e '.[bench]'")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from grpo_core.lm.config import TinyModelConfig
    from grpo_core.lm.presets import tiny_model_dir

    frames = opinion_frames({"Northland": 6, "Southland": 4})
    train = frames["train"]
    texts = [*train["prompt"], *train["chosen"], *train["rejected"]]
    tiny = TinyModelConfig(hidden_size=32, num_heads=2, intermediate_size=64)
    return tiny_model_dir(tiny, texts, 64, tmp_path_factory.mktemp("cache")), train


def trl_loss(model_dir, tmp_path, loss_type, beta, pairs, ref_chosen, ref_rejected, eps=0.0):
    """TRL's loss on our token rows: chosen rows then rejected rows, completion mask on responses."""
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    _, tokenizer = load_causal_lm(model_dir)
    args = DPOConfig(
        output_dir=str(tmp_path / "trl"), beta=beta, loss_type=[loss_type], label_smoothing=eps, bf16=False,
        use_cpu=True, report_to=[], precompute_ref_log_probs=False, max_length=None,
    )  # fmt: skip
    text = Dataset.from_dict({"prompt": ["a"], "chosen": ["b"], "rejected": ["c"]})
    trainer = DPOTrainer(
        model=str(model_dir), args=args, train_dataset=text, processing_class=tokenizer
    )
    rows = collate_pairs(pairs, tokenizer.pad_token_id, encoding="separate", group_by_length=False)
    (chunk,) = rows.chunks  # rows chosen_1, rejected_1, chosen_2, ...: TRL wants all chosen first
    completion = torch.zeros_like(chunk.input_ids)
    valid = chunk.target_pairs >= 0
    row_index = torch.arange(chunk.input_ids.shape[0]).unsqueeze(-1).expand_as(valid)
    completion[row_index[valid], chunk.target_positions[valid] + 1] = 1
    order = torch.cat([torch.arange(0, len(pairs) * 2, 2), torch.arange(1, len(pairs) * 2, 2)])
    inputs = {
        "input_ids": chunk.input_ids[order],
        "attention_mask": chunk.padding_mask()[order],
        "completion_mask": completion[order],
        "ref_chosen_logps": ref_chosen,
        "ref_rejected_logps": ref_rejected,
    }
    trainer.precompute_ref_logps = True  # read the reference log-probs from the inputs
    trainer.model.eval()
    with torch.no_grad():
        return float(trainer.compute_loss(trainer.model, inputs))


@pytest.mark.parametrize(
    ("loss_type", "beta", "eps", "smoothing"),
    [
        ("sigmoid", 0.1, 0.0, "none"),  # dpo
        ("ipo", 0.5, 0.0, "none"),  # ipo, length-normalised
        ("robust", 0.1, 0.2, "robust"),  # rdpo
    ],
)
def test_our_loss_equals_trls_on_the_same_log_probs(
    model_dir, tmp_path, loss_type, beta, eps, smoothing
):
    # given: four pairs scored by our policy (float32, separate rows: TRL's layout)
    folder, train = model_dir
    model, tokenizer = load_causal_lm(folder)
    pairs = tokenize_pairs(
        train["pair_id"][:4].tolist(), train["prompt"][:4].tolist(),
        train["chosen"][:4].tolist(), train["rejected"][:4].tolist(), tokenizer, max_length=64,
    )  # fmt: skip
    inputs = collate_pairs(
        pairs, tokenizer.pad_token_id, encoding="separate", group_by_length=False
    )
    with torch.no_grad():
        chosen, rejected = CausalLMPolicy(model, device="cpu").train(False).pair_logps(inputs)
    ref_chosen, ref_rejected = chosen - torch.tensor([0.3, -0.2, 0.1, 0.5]), rejected + 0.25
    # when: ours (DPO sums over tokens; IPO length-normalised, as TRL's) and TRL's
    if loss_type != "ipo":
        margin = log_ratio_margin(chosen, rejected, ref_chosen, ref_rejected)
        ours = pair_loss(margin, beta, "dpo", flip_coefficients(smoothing, eps))
    else:
        lengths = (inputs.chosen_lengths, inputs.rejected_lengths)
        ours = ipo_loss(
            log_ratio_margin(chosen, rejected, ref_chosen, ref_rejected, *lengths), beta
        )
    theirs = trl_loss(folder, tmp_path, loss_type, beta, pairs, ref_chosen, ref_rejected, eps)
    # then
    assert float(ours.mean()) == pytest.approx(theirs, abs=1e-5), (
        f"{loss_type}: ours {float(ours.mean())} vs TRL {theirs}"
    )
