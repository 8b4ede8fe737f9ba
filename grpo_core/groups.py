"""Group statistics and the group weights alpha of GRPO.

Ramesh et al. 2024, "Group Robust Preference Optimization in Reward-free RLHF", Algorithm 1
(https://arxiv.org/abs/2405.20304). The objective, the estimator and the update are stated in
docs/ALGORITHM.md (#the-objective, #the-group-loss-estimator,
#the-group-weight-update-mirror-ascent).

Paper symbols: alpha -> ``GroupWeights``; eta_alpha -> ``step_size``; chi -> ``robust_mix``.
Every function accepts optional leading "replica" dimensions (independent problems, e.g. seeds),
so one call serves a language model (``[B]``) and twenty synthetic seeds at once (``[20, B]``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from grpo_core.methods import Weighting

Estimator = Literal["unbiased", "batch_mean"]


def group_sums(values: Tensor, group_ids: Tensor, num_groups: int) -> tuple[Tensor, Tensor]:
    """Sum of ``values`` and number of entries per group.

    Args:
        values: ``[..., B]`` float.
        group_ids: ``[..., B]`` or ``[B]`` integer ids in ``[0, num_groups)``.
    Returns:
        ``(sums, counts)``, both ``[..., K]`` in the dtype of ``values``.
    """
    group_ids = group_ids.expand_as(values)
    if group_ids.numel() and (group_ids.min() < 0 or group_ids.max() >= num_groups):
        raise ValueError(
            f"group ids must lie in [0, {num_groups}), got {group_ids.unique().tolist()}"
        )
    shape = (*values.shape[:-1], num_groups)
    sums = values.new_zeros(shape).scatter_add(-1, group_ids, values)
    counts = values.new_zeros(shape).scatter_add(-1, group_ids, torch.ones_like(values))
    return sums, counts


def group_means(values: Tensor, group_ids: Tensor, num_groups: int) -> tuple[Tensor, Tensor]:
    """Mean of ``values`` per group and the counts; an absent group has mean 0 and count 0, no NaN.

    Over all of a group's pairs, the means of the per-pair losses are the group losses L_g of
    docs/ALGORITHM.md#the-objective.

    Args and shapes as :func:`group_sums`. Returns ``(means, counts)``, both ``[..., K]``.
    """
    sums, counts = group_sums(values, group_ids, num_groups)
    return sums / counts.clamp_min(1), counts


def estimate_group_losses(
    losses: Tensor,
    group_ids: Tensor,
    group_sizes: Tensor,
    estimator: Estimator = "unbiased",
    all_reduce: Callable[[Tensor], Tensor] | None = None,
) -> Tensor:
    """Minibatch estimate Lhat_g of each group loss L_g (the group losses of Algorithm 1 of
    Ramesh et al. 2024; docs/ALGORITHM.md#the-group-loss-estimator).

    ``"unbiased"``: Lhat_g = N / (B * N_g) * sum_{i in batch, g(i) = g} l_i, with N and N_g counted on
    the training set; E[Lhat_g] = L_g under uniform sampling and Lhat_g = L_g exactly at B = N.
    ``"batch_mean"``: the mean of the group's pairs in the batch (0 for a group absent from it).
    The paper's reference code sums with N / N_g, B times the unbiased value.

    Args:
        losses: ``[..., B]`` per-pair losses.
        group_ids: ``[..., B]`` or ``[B]``.
        group_sizes: ``[..., K]`` or ``[K]``, the training-set counts N_g (all positive).
        all_reduce: with data parallelism (:mod:`grpo_core.distributed`), the sum over ranks: the
            estimate is then that of the global batch on every rank, and its gradient this rank's
            share of the global one.
    Returns:
        ``[..., K]``.
    """
    num_groups = group_sizes.shape[-1]
    sums, counts = group_sums(losses, group_ids, num_groups)
    batch = losses.shape[-1]
    if all_reduce is not None:
        sums = sums + (all_reduce(sums) - sums.detach())  # global value, local gradient
        counts = all_reduce(counts)
        batch = counts.sum(-1, keepdim=True)  # the global minibatch size
    if estimator == "batch_mean":
        return sums / counts.clamp_min(1)
    if estimator != "unbiased":
        raise ValueError(f"unknown estimator {estimator!r}; choose 'unbiased' or 'batch_mean'")
    sizes = group_sizes.to(losses.dtype)
    total = sizes.sum(-1, keepdim=True)
    return total / (batch * sizes) * sums


@dataclass(frozen=True)
class GroupWeights:
    """Immutable group weights alpha on the simplex, kept in log space (IPO losses reach 1e4).

    ``log_alpha`` is ``[..., K]`` and is never modified in place: updates return a new value.
    """

    log_alpha: Tensor

    @staticmethod
    def uniform(num_groups: int, *, batch_shape: tuple[int, ...] = (), device=None) -> GroupWeights:
        """alpha_g = 1/K for every group: the paper's initial value
        (docs/ALGORITHM.md#the-group-weight-update-mirror-ascent)."""
        if num_groups < 1:
            raise ValueError(f"need at least one group, got {num_groups}")
        log_alpha = torch.full((*batch_shape, num_groups), -math.log(num_groups), device=device)
        return GroupWeights(log_alpha)

    @property
    def alpha(self) -> Tensor:
        """The weights themselves, ``[..., K]``, summing to 1 over the last dimension."""
        return self.log_alpha.exp()

    @property
    def num_groups(self) -> int:
        return self.log_alpha.shape[-1]


def mirror_ascent_step(
    weights: GroupWeights, group_losses: Tensor, step_size: float | Tensor
) -> GroupWeights:
    """One exponentiated-gradient (mirror ascent) step on the simplex: the alpha update of
    Algorithm 1 of Ramesh et al. 2024 (docs/ALGORITHM.md#the-group-weight-update-mirror-ascent).

    log alpha <- log_softmax(log alpha + eta_alpha * Lhat), i.e. alpha_g <- alpha_g exp(eta Lhat_g) / Z.
    The losses are detached: alpha is a constant for the theta step. ``group_losses``: ``[..., K]``;
    ``step_size``: a number, or a tensor broadcast against it (one eta per replica, ``[..., 1]``).
    """
    if bool((torch.as_tensor(step_size) < 0).any()):
        raise ValueError(f"step_size (eta_alpha) must be >= 0, got {step_size}")
    logits = weights.log_alpha + step_size * group_losses.detach().to(weights.log_alpha.dtype)
    return GroupWeights(torch.log_softmax(logits, dim=-1))


def robust_mix_weights(alpha: Tensor, robust_mix: float | Tensor) -> Tensor:
    """w_g = (1 - chi) / K + chi * alpha_g; chi = 1 is purely group robust.

    The chi trade-off of Ramesh et al. 2024 between the worst case and the average of the group
    losses (docs/ALGORITHM.md#the-objective).

    ``robust_mix`` is a number or a ``[..., 1]`` tensor that gives every replica its own chi."""
    chi = torch.as_tensor(robust_mix)
    if not bool(((chi >= 0) & (chi <= 1)).all()):
        raise ValueError(f"robust_mix (chi) must lie in [0, 1], got {robust_mix}")
    num_groups = alpha.shape[-1]
    return (1.0 - robust_mix) / num_groups + robust_mix * alpha


def theta_group_coefficients(
    weighting: Weighting,
    group_sizes: Tensor,
    weights: GroupWeights,
    robust_mix: float | Tensor = 1.0,
) -> Tensor:
    """Coefficients c_g of the theta loss sum_g c_g * Lhat_g for each method family.

    The theta step of Algorithm 1 of Ramesh et al. 2024, with the methods' coefficients of
    docs/ALGORITHM.md#the-objective.

    ``"size"``: c_g = N_g / N, so with the unbiased estimator the loss is the plain minibatch mean;
    ``"uniform"``: c_g = 1/K (importance sampling); ``"robust"``: c_g = w_g of :func:`robust_mix_weights`.
    Returns ``[..., K]`` (broadcast of ``group_sizes`` and ``weights``).
    """
    alpha = weights.alpha
    sizes = group_sizes.to(alpha.dtype)
    if weighting == "size":
        return (sizes / sizes.sum(-1, keepdim=True)).expand_as(alpha)
    if weighting == "uniform":
        return torch.full_like(alpha, 1.0 / alpha.shape[-1])
    if weighting == "robust":
        return robust_mix_weights(alpha, robust_mix)
    raise ValueError(f"unknown weighting {weighting!r}")
