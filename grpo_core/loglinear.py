"""Log-linear policies pi_theta(y|x) proportional to exp(theta . phi(x, y)).

The policy class of the theory and synthetic experiments of Ramesh et al. 2024 (arXiv:2405.20304,
https://arxiv.org/abs/2405.20304); docs/ALGORITHM.md#log-linear-policies.

The log-ratio margin is h = theta . (phi(x, y_w) - phi(x, y_l)) against a uniform reference, so
DPO is logistic regression and IPO least squares on dphi: a convex-concave saddle point with GRPO.
A leading replica dim R runs independent problems (seeds) side by side.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property

import torch
from torch import Tensor, nn

from grpo_core.groups import GroupWeights, group_means, mirror_ascent_step, robust_mix_weights
from grpo_core.losses import ipo_loss
from grpo_core.policy import PairBatch


@dataclass(frozen=True)
class ActionPairs:
    """Pairs over a finite action set: features of every action and the two compared actions.

    Attributes:
        features: ``[R, N, A, d]`` phi(x_i, a, g_i) for every action a.
        chosen, rejected: ``[R, N]`` action indices of y_w and y_l.
        group_ids: ``[R, N]``.
    """

    features: Tensor
    chosen: Tensor
    rejected: Tensor
    group_ids: Tensor
    num_groups: int

    @property
    def num_pairs(self) -> int:
        return self.features.shape[1]

    @cached_property
    def features_by_dim(self) -> Tensor:
        """The features as ``[R, d, A * N]``: pairs innermost, so the matmul and the normalisation
        over actions vectorise along N on a CPU (two to three times faster than ``[R, N, A, d]``)."""
        r, n, a, d = self.features.shape
        return self.features.permute(0, 3, 2, 1).reshape(r, d, a * n)

    @property
    def feature_difference(self) -> Tensor:
        """dphi = phi(x, y_w) - phi(x, y_l), ``[R, N, d]``: the rows of Y of the closed form."""
        return _take(self.features, self.chosen) - _take(self.features, self.rejected)

    def batch(self, indices: Tensor) -> PairBatch:
        """Pairs at ``indices`` (``[B]``, shared by all replicas); the reference is uniform."""
        full = indices.numel() == self.num_pairs and bool(
            (indices == torch.arange(self.num_pairs)).all()
        )
        sub = (
            self
            if full
            else ActionPairs(
                self.features[:, indices],
                self.chosen[:, indices],
                self.rejected[:, indices],
                self.group_ids[:, indices],
                self.num_groups,
            )
        )
        ref = torch.full(
            sub.chosen.shape, -math.log(self.features.shape[2]), device=self.features.device
        )
        return PairBatch(indices, sub.group_ids, ref, ref, sub)


def _take(features: Tensor, actions: Tensor) -> Tensor:
    index = actions[..., None, None].expand(*actions.shape, 1, features.shape[-1])
    return features.gather(-2, index).squeeze(-2)


class LogLinearPolicy(nn.Module):
    """pi_theta(a|x, g) = softmax_a(theta . phi(x, a, g)); ``theta`` is ``[R, d]``."""

    def __init__(self, theta: Tensor):
        super().__init__()
        self.theta = nn.Parameter(theta.clone().float())

    def action_logps(self, pairs: ActionPairs) -> Tensor:
        """log pi(a|x) for every action of every pair: ``[R, N, A]`` (a transposed view)."""
        return self._logps_by_action(pairs).transpose(1, 2)

    def _logps_by_action(self, pairs: ActionPairs) -> Tensor:
        r, n, a, _ = pairs.features.shape
        scores = torch.bmm(self.theta[:, None, :], pairs.features_by_dim).view(r, a, n)
        # log-softmax over actions written out: the shift is a constant, so the gradient is exact.
        shift = scores.detach().amax(dim=1, keepdim=True)
        log_norm = (scores - shift).exp().sum(dim=1, keepdim=True).log() + shift
        return scores - log_norm

    def pair_logps(self, inputs: ActionPairs) -> tuple[Tensor, Tensor]:
        logps = self._logps_by_action(inputs)
        chosen = logps.gather(1, inputs.chosen[:, None, :]).squeeze(1)
        rejected = logps.gather(1, inputs.rejected[:, None, :]).squeeze(1)
        return chosen, rejected

    def trainable_parameters(self) -> Iterable[nn.Parameter]:
        return [self.theta]


def dpo_gradient(theta: Tensor, dphi: Tensor, beta: float, pair_weights: Tensor) -> Tensor:
    """Analytic gradient of sum_i v_i * -log sigmoid(beta * theta . dphi_i) with respect to theta.

    d/dtheta = -sum_i v_i * beta * sigmoid(-beta h_i) * dphi_i. Shapes: theta ``[R, d]``, dphi
    ``[R, N, d]``, pair_weights ``[R, N]``; returns ``[R, d]``.
    """
    margin = torch.einsum("rnd,rd->rn", dphi, theta)
    scale = -beta * torch.sigmoid(-beta * margin) * pair_weights
    return torch.einsum("rn,rnd->rd", scale, dphi)


def ipo_closed_form(dphi: Tensor, pair_weights: Tensor, beta: float, ridge: float = 0.0) -> Tensor:
    """theta = 1/(2 beta) (Y^T W Y + lambda I)^-1 Y^T W 1, in float64 (the IPO closed form).

    Minimises sum_i W_ii (theta . dphi_i - 1/(2 beta))^2 + lambda |theta|^2. Shapes: dphi ``[R, N, d]``,
    pair_weights (the diagonal of W) ``[R, N]``; returns ``[R, d]``.
    """
    y = dphi.double()
    w = pair_weights.double()
    gram = torch.einsum("rnd,rn,rne->rde", y, w, y)
    gram = gram + ridge * torch.eye(y.shape[-1], dtype=y.dtype, device=y.device)
    rhs = torch.einsum("rnd,rn->rd", y, w) / (2.0 * beta)
    return torch.linalg.solve(gram, rhs).to(dphi.dtype)


def group_pair_weights(
    group_ids: Tensor, group_coefficients: Tensor, group_sizes: Tensor
) -> Tensor:
    """W_ii = c_{g(i)} / N_{g(i)}, so that sum_i W_ii l_i = sum_g c_g L_g. Returns ``[R, N]``."""
    per_group = group_coefficients / group_sizes
    return per_group.gather(-1, group_ids)


def gr_ipo_closed_form(
    data: ActionPairs,
    beta: float,
    step_size: float,
    iterations: int,
    *,
    robust_mix: float = 1.0,
    ridge: float = 0.0,
    group_sizes: Tensor,
) -> tuple[Tensor, GroupWeights]:
    """GR-IPO for log-linear policies: alternate exact theta solves with alpha steps.

    Ramesh et al. 2024 (arXiv:2405.20304), with W_ii = w_g / N_g as the paper has it (the reference
    code drops the 1/N_g); docs/ALGORITHM.md#log-linear-policies.

    Each iteration: group losses L_g at the current theta, alpha <- mirror ascent, theta <- closed form
    with W_ii = w_g / N_g. Starts from uniform alpha. Returns ``(theta [R, d], final weights)``.
    """
    dphi = data.feature_difference
    ids = data.group_ids
    weights = GroupWeights.uniform(
        data.num_groups, batch_shape=(dphi.shape[0],), device=dphi.device
    )
    coefficients = robust_mix_weights(weights.alpha, robust_mix)
    theta = ipo_closed_form(dphi, group_pair_weights(ids, coefficients, group_sizes), beta, ridge)
    for _ in range(iterations):
        losses = ipo_loss(torch.einsum("rnd,rd->rn", dphi, theta), beta)
        group_losses, _ = group_means(losses, ids, data.num_groups)
        weights = mirror_ascent_step(weights, group_losses, step_size)
        coefficients = robust_mix_weights(weights.alpha, robust_mix)
        theta = ipo_closed_form(
            dphi, group_pair_weights(ids, coefficients, group_sizes), beta, ridge
        )
    return theta, weights
