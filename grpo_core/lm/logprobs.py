"""Sequence log-probs of responses from causal-LM logits (docs/ALGORITHM.md#notation).

log pi(y|x) = sum over the response tokens y_t (EOS included) of log softmax(logits)[y_t], the logits
taken at the position that predicts y_t (:mod:`grpo_core.lm.batching` says which). Prompt and padding
are never scored, and the log-softmax runs in float32 whatever dtype the model computed in.
"""

from __future__ import annotations

import torch
from torch import Tensor

from grpo_core.lm.batching import CHOSEN, REJECTED, SequenceBatch


def kept_positions(batch: SequenceBatch) -> Tensor:
    """``[P]`` sorted positions whose logits predict some target of the batch (the union over rows).

    A model then only computes the logits at these positions (``logits_to_keep``): for short
    responses (an option letter) that saves most of the ``[S, T, V]`` logits.
    """
    return torch.unique(batch.target_positions[batch.target_pairs >= 0])


def target_logps(logits: Tensor, batch: SequenceBatch, positions: Tensor | None = None) -> Tensor:
    """log-prob of every target, ``[S, K]`` float32 (0 where a row has no target).

    Args:
        logits: ``[S, P, V]`` logits at ``positions`` (``[S, T, V]`` at every position if None).
        positions: ``[P]`` from :func:`kept_positions`.
    """
    rows = torch.arange(logits.shape[0], device=logits.device).unsqueeze(-1)
    at = batch.target_positions
    if positions is not None:
        at = torch.searchsorted(positions, at).clamp_max(positions.numel() - 1)
    logits = logits.float()
    chosen_logits = logits[rows, at, batch.target_ids]
    normaliser = logits.logsumexp(-1)[rows, at]
    logps = chosen_logits - normaliser
    return torch.where(batch.target_pairs >= 0, logps, torch.zeros_like(logps))


def pair_sums(logps: Tensor, batch: SequenceBatch, num_pairs: int) -> tuple[Tensor, Tensor]:
    """Target log-probs summed per pair and side: ``(chosen [B], rejected [B])``."""
    valid = batch.target_pairs >= 0
    sums = []
    for side in (CHOSEN, REJECTED):
        take = valid & (batch.target_sides == side)
        sums.append(logps.new_zeros(num_pairs).index_add(0, batch.target_pairs[take], logps[take]))
    return sums[0], sums[1]
