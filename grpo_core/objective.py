"""The training objective of one method: which loss, how groups are weighted, how alpha moves.

The methods are those of Ramesh et al. 2024 (arXiv:2405.20304, https://arxiv.org/abs/2405.20304) and
the per-pair baselines of docs/ALGORITHM.md#baselines.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from grpo_core.config import GroupWeightsConfig, LossConfig
from grpo_core.groups import Estimator
from grpo_core.losses import flip_coefficients
from grpo_core.methods import (
    LossType,
    Method,
    Weighting,
    loss_type_of,
    pair_weighting_of,
    smoothing_of,
    weighting_of,
)


@dataclass(frozen=True)
class Objective:
    """Everything the training step needs to know about a method (docs/ALGORITHM.md: the per-pair
    loss, the objective's group coefficients, the estimator and the mirror-ascent update).

    Attributes:
        loss_type: "dpo" or "ipo" per-pair loss.
        weighting: "size" (plain), "uniform" (importance sampling) or "robust" (GRPO).
        beta: beta of the per-pair loss.
        step_size: eta_alpha of the mirror-ascent update (used by "robust" only); a ``[..., 1]``
            tensor gives every replica its own (0 freezes alpha at its initial value).
        robust_mix: chi of the theta weights (used by "robust" only); a ``[..., 1]`` tensor gives
            every replica its own.
        estimator: minibatch group-loss estimator, "unbiased" or "batch_mean".
        halve_step_on_lr_cut: halve eta_alpha when the plateau scheduler cuts the learning rate.
        length_normalized: divide each response's log-ratio by its token count (TRL's IPO).
        flip: ``(a, b)`` of the per-pair loss a l(h) + b l(-h) (cdpo, rdpo); numbers or ``[..., 1]``.
        pair_sign, pair_temperature, pair_weight_cap: the pairs' weights of
            :func:`grpo_core.losses.pair_weights` (dr_dpo: -1, kl_dpo: +1, others 0: no weights).
    """

    loss_type: LossType
    weighting: Weighting
    beta: float
    step_size: float | Tensor = 0.0
    robust_mix: float | Tensor = 1.0
    estimator: Estimator = "unbiased"
    halve_step_on_lr_cut: bool = False
    length_normalized: bool = False
    flip: tuple[float | Tensor, float | Tensor] = (1.0, 0.0)
    pair_sign: float | Tensor = 0.0
    pair_temperature: float | Tensor = 1.0
    pair_weight_cap: float | Tensor = math.inf

    @property
    def reweights_pairs(self) -> bool:
        """Whether some replica weights its pairs (dr_dpo, kl_dpo)."""
        return bool((torch.as_tensor(self.pair_sign) != 0).any())

    @property
    def updates_weights(self) -> bool:
        """Only the group-robust methods move alpha."""
        return self.weighting == "robust"

    @staticmethod
    def for_method(
        method: Method, loss: LossConfig, group_weights: GroupWeightsConfig
    ) -> Objective:
        """The objective of ``method`` with the run's loss and group-weight sections."""
        pairs = pair_weighting_of(method)
        return Objective(
            loss_type=loss_type_of(method),
            weighting=weighting_of(method),
            beta=loss.beta,
            step_size=group_weights.step_size,
            robust_mix=group_weights.robust_mix,
            estimator=group_weights.estimator,
            halve_step_on_lr_cut=group_weights.halve_step_on_lr_cut,
            length_normalized=loss.length_normalized,
            flip=flip_coefficients(smoothing_of(method), loss.label_smoothing),
            pair_sign=PAIR_SIGNS[pairs],
            pair_temperature=loss.pair_temperature,
            pair_weight_cap=loss.pair_weight_cap if pairs == "kl" else math.inf,
        )


PAIR_SIGNS = {"none": 0.0, "dr": -1.0, "kl": 1.0}
"""The sign of the loss in the pairs' softmax weights per pair weighting."""
