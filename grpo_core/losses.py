"""Per-pair preference losses (spec sections 1-2). Every function returns UNREDUCED tensors.

Paper symbols: beta -> ``beta``; the log-ratio margin h of spec section 1 -> ``margin``.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from grpo_core.methods import LossType


def log_ratio_margin(
    policy_chosen: Tensor,
    policy_rejected: Tensor,
    ref_chosen: Tensor,
    ref_rejected: Tensor,
    chosen_lengths: Tensor | None = None,
    rejected_lengths: Tensor | None = None,
) -> Tensor:
    """h = [log pi(y_w|x) - log ref(y_w|x)] - [log pi(y_l|x) - log ref(y_l|x)].

    With lengths (the length-normalised variant of TRL's IPO), each bracket is divided by its
    response's number of tokens |y|. All arguments share one shape ``[..., B]``; returns ``[..., B]``.
    """
    chosen = policy_chosen - ref_chosen
    rejected = policy_rejected - ref_rejected
    if chosen_lengths is not None and rejected_lengths is not None:
        chosen = chosen / chosen_lengths.clamp_min(1).to(chosen.dtype)
        rejected = rejected / rejected_lengths.clamp_min(1).to(rejected.dtype)
    return chosen - rejected


def dpo_loss(margin: Tensor, beta: float) -> Tensor:
    """DPO: l = -log sigmoid(beta * h), via logsigmoid for stability. ``[..., B] -> [..., B]``."""
    return -F.logsigmoid(beta * margin)


def ipo_loss(margin: Tensor, beta: float) -> Tensor:
    """IPO, paper form: l = (h - 1 / (2 beta))^2 (not length-normalised). ``[..., B] -> [..., B]``."""
    return (margin - 1.0 / (2.0 * beta)) ** 2


def pair_loss(margin: Tensor, beta: float, loss_type: LossType) -> Tensor:
    """The per-pair loss of ``loss_type`` ("dpo" or "ipo") at margin h. ``[..., B] -> [..., B]``."""
    if beta <= 0:
        raise ValueError(f"beta must be positive, got {beta}")
    if loss_type == "dpo":
        return dpo_loss(margin, beta)
    if loss_type == "ipo":
        return ipo_loss(margin, beta)
    raise ValueError(f"unknown loss_type {loss_type!r}; choose 'dpo' or 'ipo'")


def sft_loss(policy_chosen: Tensor, chosen_lengths: Tensor) -> Tensor:
    """Negative log-likelihood of the chosen response per token. ``[B], [B] -> [B]``."""
    return -policy_chosen / chosen_lengths.clamp_min(1).to(policy_chosen.dtype)
