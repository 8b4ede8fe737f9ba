"""Per-pair preference losses. Every function returns UNREDUCED tensors.

DPO: Rafailov et al. 2023, Eq. 7, https://arxiv.org/abs/2305.18290; IPO: Azar et al. 2023, Eq. 17,
https://arxiv.org/abs/2310.12036; GR-DPO and GR-IPO (Ramesh et al. 2024,
https://arxiv.org/abs/2405.20304) use them per pair. Formulas: docs/ALGORITHM.md#per-pair-losses,
the baselines' weights and flips: docs/ALGORITHM.md#baselines.

Paper symbols: beta -> ``beta``; the log-ratio margin h (docs/ALGORITHM.md#notation) -> ``margin``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from grpo_core.methods import LossType, Smoothing


def log_ratio_margin(
    policy_chosen: Tensor,
    policy_rejected: Tensor,
    ref_chosen: Tensor,
    ref_rejected: Tensor,
    chosen_lengths: Tensor | None = None,
    rejected_lengths: Tensor | None = None,
) -> Tensor:
    """h = [log pi(y_w|x) - log ref(y_w|x)] - [log pi(y_l|x) - log ref(y_l|x)].

    The log-ratio margin of docs/ALGORITHM.md#notation.

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
    """DPO: l = -log sigmoid(beta * h), via logsigmoid for stability. ``[..., B] -> [..., B]``.

    Rafailov et al. 2023, Eq. 7 (https://arxiv.org/abs/2305.18290), one term per pair.
    """
    return -F.logsigmoid(beta * margin)


def ipo_loss(margin: Tensor, beta: float) -> Tensor:
    """IPO, paper form: l = (h - 1 / (2 beta))^2 (not length-normalised). ``[..., B] -> [..., B]``.

    Azar et al. 2023, Eq. 17 (https://arxiv.org/abs/2310.12036), one term per pair; its tau is ``beta``.
    """
    return (margin - 1.0 / (2.0 * beta)) ** 2


def pair_loss(
    margin: Tensor,
    beta: float,
    loss_type: LossType,
    flip: tuple[float | Tensor, float | Tensor] = (1.0, 0.0),
) -> Tensor:
    """The per-pair loss of ``loss_type`` ("dpo" or "ipo") at margin h, ``[..., B] -> [..., B]``.

    DPO Eq. 7 of Rafailov et al. 2023 or IPO Eq. 17 of Azar et al. 2023
    (docs/ALGORITHM.md#per-pair-losses).

    ``flip = (a, b)`` gives a l(h) + b l(-h), the loss of a label that may be flipped
    (:func:`flip_coefficients`; numbers or ``[..., 1]`` tensors, one per replica); ``(1, 0)``: l(h).
    """
    if beta <= 0:
        raise ValueError(f"beta must be positive, got {beta}")
    if loss_type == "dpo":
        base = dpo_loss
    elif loss_type == "ipo":
        base = ipo_loss
    else:
        raise ValueError(f"unknown loss_type {loss_type!r}; choose 'dpo' or 'ipo'")
    a, b = flip
    if not isinstance(b, Tensor) and b == 0:  # no flipped term: l(-h) is not computed
        return a * base(margin, beta)
    return a * base(margin, beta) + b * base(-margin, beta)


def flip_coefficients(smoothing: Smoothing, eps: float) -> tuple[float, float]:
    """``(a, b)`` of ``a l(h) + b l(-h)`` for labels flipped with probability eps.

    ``"conservative"`` (cDPO, Mitchell 2023, a note on DPO with noisy preferences): (1 - eps, eps),
    the expected loss; ``"robust"`` (rDPO, Chowdhury et al. 2024, "Provably Robust DPO",
    https://arxiv.org/abs/2403.00409; TRL's ``robust``): ((1 - eps), -eps) / (1 - 2 eps), whose
    expectation under flips is the clean loss; ``"none"``: (1, 0). See docs/ALGORITHM.md#baselines.
    """
    if not 0 <= eps < 0.5:
        raise ValueError(f"label smoothing eps must lie in [0, 0.5), got {eps}")
    if smoothing == "conservative":
        return 1.0 - eps, eps
    if smoothing == "robust":
        return (1.0 - eps) / (1.0 - 2.0 * eps), -eps / (1.0 - 2.0 * eps)
    return 1.0, 0.0


def pair_weights(
    losses: Tensor,
    sign: float | Tensor,
    temperature: float | Tensor,
    cap: float | Tensor = math.inf,
) -> Tensor:
    """Weights of the pairs of a batch, mean 1 over the last dimension, no gradient.

    w_i = B softmax_i(sign * l_i / temperature): sign -1 is Dr. DPO (Wu et al. 2024,
    https://arxiv.org/abs/2407.07880; w proportional to exp(-l_i / beta'), the gradient of
    -beta' log mean exp(-l / beta')), +1 KL-DPO (Xu et al. 2025, https://arxiv.org/abs/2502.01930;
    proportional to exp((l_i - mean l) / tau)), 0 every pair alike (docs/ALGORITHM.md#baselines).
    Weights above ``cap`` are cut to it and the rest rescaled to mean 1 (once). Arguments broadcast
    against ``losses`` ``[..., B]`` (``[..., 1]``: one value per replica); returns ``[..., B]``.
    """
    size = losses.shape[-1]
    z = torch.as_tensor(sign, dtype=losses.dtype) * losses.detach() / temperature
    weights = torch.softmax(z, dim=-1) * size
    weights = torch.minimum(weights, torch.as_tensor(cap, dtype=losses.dtype))
    return weights / weights.mean(-1, keepdim=True)


def sft_loss(policy_chosen: Tensor, chosen_lengths: Tensor) -> Tensor:
    """Negative log-likelihood of the chosen response per token. ``[B], [B] -> [B]``.

    The SFT stage before preference training (docs/ALGORITHM.md#language-model-experiments).
    """
    return -policy_chosen / chosen_lengths.clamp_min(1).to(policy_chosen.dtype)
