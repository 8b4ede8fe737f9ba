"""The training objective of one method: which loss, how groups are weighted, how alpha moves."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from grpo_core.config import GroupWeightsConfig, LossConfig
from grpo_core.groups import Estimator
from grpo_core.methods import LossType, Method, Weighting, loss_type_of, weighting_of


@dataclass(frozen=True)
class Objective:
    """Everything the training step needs to know about a method (spec sections 2-4).

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
    """

    loss_type: LossType
    weighting: Weighting
    beta: float
    step_size: float | Tensor = 0.0
    robust_mix: float | Tensor = 1.0
    estimator: Estimator = "unbiased"
    halve_step_on_lr_cut: bool = False
    length_normalized: bool = False

    @property
    def updates_weights(self) -> bool:
        """Only the group-robust methods move alpha."""
        return self.weighting == "robust"

    @staticmethod
    def for_method(
        method: Method, loss: LossConfig, group_weights: GroupWeightsConfig
    ) -> Objective:
        """The objective of ``method`` with the run's loss and group-weight sections."""
        return Objective(
            loss_type=loss_type_of(method),
            weighting=weighting_of(method),
            beta=loss.beta,
            step_size=group_weights.step_size,
            robust_mix=group_weights.robust_mix,
            estimator=group_weights.estimator,
            halve_step_on_lr_cut=group_weights.halve_step_on_lr_cut,
            length_normalized=loss.length_normalized,
        )
