"""Sequence log-probs of responses from causal-LM logits (spec section 1).

log pi(y|x) = sum over the response tokens y_t (EOS included) of log softmax(logits at t-1)[y_t]:
the logits at position t predict token t+1, prompt and padding positions are masked out, and the
log-softmax runs in float32 whatever dtype the model computed in.
"""

from __future__ import annotations

import torch
from torch import Tensor


def scored_positions(response_mask: Tensor) -> Tensor:
    """Positions whose logits predict a scored token: ``[P]`` sorted, the union over rows.

    ``response_mask``: ``[S, T]`` bool. A model then only needs the logits at these P positions
    (``logits_to_keep``), which for short responses (an option letter) saves most of the
    ``[S, T, V]`` float32 log-softmax.
    """
    targets = response_mask[:, 1:].any(0)
    return targets.nonzero().squeeze(-1)


def gather_logps(
    logits: Tensor, input_ids: Tensor, response_mask: Tensor, positions: Tensor | None = None
) -> Tensor:
    """Summed log-probs of the scored tokens of every sequence.

    Args:
        logits: ``[S, P, V]`` logits at ``positions`` (``[S, T, V]`` at every position if None).
        input_ids: ``[S, T]``.
        response_mask: ``[S, T]`` bool, True on the scored tokens (never position 0).
        positions: ``[P]`` positions of ``logits`` along the sequence, from :func:`scored_positions`.
    Returns:
        ``[S]`` float32.
    """
    if positions is None:
        logits = logits[:, :-1]
        targets, mask = input_ids[:, 1:], response_mask[:, 1:]
    else:
        targets, mask = input_ids[:, positions + 1], response_mask[:, positions + 1]
    token_logps = logits.float().log_softmax(-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    return torch.where(mask, token_logps, torch.zeros_like(token_logps)).sum(-1)
