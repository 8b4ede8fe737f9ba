"""Per-group evaluation, the same API for log-linear policies and language models.

The metrics of Ramesh et al. 2024 (arXiv:2405.20304, https://arxiv.org/abs/2405.20304) and their
aggregates over groups, as stated in docs/ALGORITHM.md#evaluation-metrics.

Metrics per group g (means over its pairs): ``loss``; ``reward_accuracy`` = fraction with h > 0
(strict, so exactly 0 at step 0); ``logprob_accuracy`` = fraction with log pi(y_w) > log pi(y_l);
``reward_margin`` = mean beta*h; ``chosen_reward`` / ``rejected_reward`` = mean beta*(log pi - log ref).
Aggregates: worst group (direction from :data:`grpo_core.names.HIGHER_IS_BETTER`, never guessed),
unweighted average over groups, imbalance (max - min) and best-minus-worst gap.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from grpo_core import names
from grpo_core.groups import group_means
from grpo_core.losses import log_ratio_margin, pair_loss
from grpo_core.methods import LossType
from grpo_core.policy import PairDataset, Policy


@dataclass(frozen=True)
class PairScores:
    """Policy and reference log-probs of every pair of a dataset, ``[..., N]`` each, and the
    responses' token counts (None for one-action responses)."""

    policy_chosen: Tensor
    policy_rejected: Tensor
    ref_chosen: Tensor
    ref_rejected: Tensor
    group_ids: Tensor
    chosen_lengths: Tensor | None = None
    rejected_lengths: Tensor | None = None


@torch.no_grad()
def score_pairs(policy: Policy, dataset: PairDataset, batch_size: int | None = None) -> PairScores:
    """Log-probs of all pairs, batched, without gradients, in eval mode (restored afterwards)."""
    was_training = getattr(policy, "training", True)
    policy.train(False)
    try:
        size = dataset.num_pairs if batch_size is None else batch_size
        parts = []
        for start in range(0, dataset.num_pairs, size):
            batch = dataset.batch(torch.arange(start, min(start + size, dataset.num_pairs)))
            chosen, rejected = policy.pair_logps(batch.inputs)
            parts.append(
                (
                    chosen.float(),
                    rejected.float(),
                    batch.ref_chosen,
                    batch.ref_rejected,
                    batch.group_ids,
                    batch.chosen_lengths,
                    batch.rejected_lengths,
                )
            )
    finally:
        policy.train(was_training)
    columns = [
        None if parts[0][i] is None else torch.cat([p[i].expand(p[0].shape) for p in parts], dim=-1)
        for i in range(7)
    ]
    return PairScores(*columns)


def pair_values(
    scores: PairScores, beta: float, loss_type: LossType, length_normalized: bool = False
) -> dict[str, Tensor]:
    """Every per-group metric per pair: name -> ``[..., N]`` (unreduced).

    The metrics of docs/ALGORITHM.md#evaluation-metrics.

    ``length_normalized``: the margin h of the length-normalised variant (as trained with it).
    """
    lengths = (scores.chosen_lengths, scores.rejected_lengths) if length_normalized else ()
    margin = log_ratio_margin(
        scores.policy_chosen,
        scores.policy_rejected,
        scores.ref_chosen,
        scores.ref_rejected,
        *lengths,
    )
    return {
        "loss": pair_loss(margin, beta, loss_type),
        "reward_accuracy": (margin > 0).float(),
        "logprob_accuracy": (scores.policy_chosen > scores.policy_rejected).float(),
        "reward_margin": beta * margin,
        "chosen_reward": beta * (scores.policy_chosen - scores.ref_chosen),
        "rejected_reward": beta * (scores.policy_rejected - scores.ref_rejected),
    }


def group_metrics(
    scores: PairScores,
    num_groups: int,
    beta: float,
    loss_type: LossType,
    length_normalized: bool = False,
) -> dict[str, Tensor]:
    """Every metric of :func:`pair_values` averaged per group: name -> ``[..., K]``, plus ``count``."""
    metrics = {}
    for name, values in pair_values(scores, beta, loss_type, length_normalized).items():
        metrics[name], counts = group_means(values, scores.group_ids, num_groups)
    metrics[names.COUNT] = counts
    return metrics


def worst_group(
    values: Tensor, higher_is_better: bool, counts: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """Worst value and its group index over the last dim; groups with count 0 are ignored.

    Returns ``(value, index)``, each ``[...]``: the max for losses, the min for accuracies.
    """
    if counts is not None:
        fill = float("-inf") if not higher_is_better else float("inf")
        values = torch.where(counts > 0, values, torch.full_like(values, fill))
    return values.min(-1) if higher_is_better else values.max(-1)


def summarize(
    metrics: dict[str, Tensor], group_slugs: Sequence[str], split: str
) -> dict[str, float]:
    """Flat metric keys of one split for one (unreplicated) run (layout: :mod:`grpo_core.names`).

    Per group every metric and the count; for every metric with a direction its worst group; for
    every metric the unweighted average over the groups present; the loss imbalance (max - min)
    and the accuracy gaps (best - worst). ``metrics`` values are ``[K]`` tensors.
    """
    counts = metrics[names.COUNT]
    if counts.dim() != 1 or counts.shape[0] != len(group_slugs):
        raise ValueError(
            f"expected [K={len(group_slugs)}] metrics, got shape {tuple(counts.shape)}"
        )
    present = counts > 0
    out: dict[str, float] = {}
    for slug, count in zip(group_slugs, counts.tolist(), strict=True):
        out[names.eval_key(split, "group", names.COUNT, slug)] = float(count)
    for name in (*names.HIGHER_IS_BETTER, *names.DESCRIPTIVE_METRICS):
        values = metrics[name]
        for slug, value, here in zip(group_slugs, values.tolist(), present.tolist(), strict=True):
            if here:
                out[names.eval_key(split, "group", name, slug)] = value
        if not present.any():
            continue
        out[names.eval_key(split, "average", name)] = values[present].mean().item()
        if name in names.HIGHER_IS_BETTER:
            worst, _ = worst_group(values, names.HIGHER_IS_BETTER[name], counts)
            out[names.eval_key(split, "worst_group", name)] = worst.item()
    losses = metrics["loss"][present]
    if losses.numel():
        out[names.eval_key(split, "imbalance", "loss")] = (losses.max() - losses.min()).item()
        for name in names.ACCURACIES:
            values = metrics[name][present]
            out[names.eval_key(split, "gap", name)] = (values.max() - values.min()).item()
    return out


def evaluate_policy(
    policy: Policy,
    dataset: PairDataset,
    *,
    beta: float,
    loss_type: LossType,
    batch_size: int | None = None,
    length_normalized: bool = False,
) -> dict[str, Tensor]:
    """Score ``dataset`` with ``policy`` and return :func:`group_metrics` (no gradients, no alpha update)."""
    scores = score_pairs(policy, dataset, batch_size)
    return group_metrics(scores, dataset.num_groups, beta, loss_type, length_normalized)
