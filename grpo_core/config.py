"""Frozen pydantic configuration sections shared by every run (the pipeline composes them in ``tasks.run_config``).

Paper symbols map to names here once: beta -> ``LossConfig.beta``; eta_theta ->
``OptimConfig.learning_rate``; eta_alpha -> ``GroupWeightsConfig.step_size``; chi ->
``GroupWeightsConfig.robust_mix`` (Ramesh et al. 2024, arXiv:2405.20304,
https://arxiv.org/abs/2405.20304; docs/ALGORITHM.md). Core functions receive only the section they
need.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Section(BaseModel):
    """Base of every config section: immutable, unknown keys rejected."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class LossConfig(Section):
    """The per-pair preference loss (docs/ALGORITHM.md#per-pair-losses).

    Its type (DPO or IPO) follows the method.
    """

    beta: float = Field(
        0.1,
        gt=0,
        description="beta: strength of the KL regularisation to the reference policy. DPO: "
        "-log sigmoid(beta*h); IPO: (h - 1/(2*beta))^2. The paper's language-model runs use 0.01.",
    )
    length_normalized: bool = Field(
        False,
        description="Divide each response's log-ratio by its number of tokens before the loss (TRL's "
        "IPO, and its sigmoid_norm for DPO). The paper sums over tokens (False).",
    )
    label_smoothing: float = Field(
        0.1,
        ge=0,
        lt=0.5,
        description="eps of cdpo and rdpo: the assumed probability that a label is flipped (TRL's "
        "label_smoothing of its robust loss).",
    )
    pair_temperature: float = Field(
        1.0,
        gt=0,
        description="beta' of dr_dpo and tau of kl_dpo: pairs are weighted by softmax(-+loss / "
        "temperature) over the batch; smaller is more extreme.",
    )
    pair_weight_cap: float = Field(
        10.0,
        ge=1,
        description="kl_dpo: no pair weighs more than this many times the batch's mean weight.",
    )


class GroupWeightsConfig(Section):
    """How the group-robust methods adapt their group weights alpha.

    Algorithm 1 of Ramesh et al. 2024 (docs/ALGORITHM.md#the-group-weight-update-mirror-ascent).
    """

    step_size: float = Field(
        0.01,
        ge=0,
        description="eta_alpha: step size of the mirror-ascent update of the group weights. "
        "Only the gr_* methods use it.",
    )
    robust_mix: float = Field(
        1.0,
        ge=0,
        le=1,
        description="chi in [0, 1]: theta weights are (1-chi)/K + chi*alpha. 1 = purely group robust, "
        "0 = average of the group means.",
    )
    estimator: Literal["unbiased", "batch_mean"] = Field(
        "unbiased",
        description="Minibatch group-loss estimate: 'unbiased' = N/(B*N_g) * sum of the group's losses "
        "(exact at full batch); 'batch_mean' = mean of the group's pairs in the batch.",
    )
    halve_step_on_lr_cut: bool = Field(
        False,
        description="Halve eta_alpha whenever the plateau scheduler cuts the learning rate "
        "(as the paper's reference code does).",
    )


class PlateauConfig(Section):
    """ReduceLROnPlateau on the validation loss, and early stopping after a number of cuts."""

    enabled: bool = Field(
        False, description="Cut the learning rate when the validation loss stalls."
    )
    factor: float = Field(
        0.1, gt=0, lt=1, description="Multiply the learning rate by this on a cut."
    )
    patience: int = Field(4, ge=0, description="Evaluations without improvement before a cut.")
    max_cuts: int | None = Field(
        4, ge=1, description="Stop training after this many cuts (None: never stop early)."
    )


class OptimConfig(Section):
    """The theta optimiser: full-batch gradient descent (synthetic) or minibatch AdamW (language models)."""

    optimizer: Literal["sgd", "adamw"] = Field(
        "adamw",
        description="'sgd' = plain gradient descent (the synthetic experiments), 'adamw' = AdamW.",
    )
    learning_rate: float = Field(5e-5, gt=0, description="eta_theta: the learning rate of theta.")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay.")
    batch_size: int | None = Field(
        8, ge=1, description="Pairs per forward pass (microbatch). None = full batch (all pairs)."
    )
    grad_accum_steps: int = Field(
        1,
        ge=1,
        description="Microbatches per optimizer step (effective batch = batch_size * this).",
    )
    max_steps: int = Field(100, ge=1, description="Optimizer steps to run (at most).")
    max_grad_norm: float | None = Field(
        10.0, gt=0, description="Clip the gradient norm to this value (None: no clipping)."
    )
    plateau: PlateauConfig = Field(
        default_factory=PlateauConfig,
        description="Learning-rate cuts on a validation plateau and early stopping.",
    )

    @model_validator(mode="after")
    def _check(self) -> OptimConfig:
        if self.batch_size is None and self.grad_accum_steps != 1:
            raise ValueError("grad_accum_steps must be 1 with a full batch (batch_size=None)")
        return self


class EvalConfig(Section):
    """When and how to evaluate per group (docs/ALGORITHM.md#evaluation-metrics)."""

    every_steps: int | None = Field(
        None,
        ge=1,
        description="Evaluate the validation split every this many optimizer steps "
        "(None: only at the end). The plateau scheduler needs it.",
    )
    batch_size: int = Field(32, ge=1, description="Pairs per forward pass at evaluation.")
    splits: tuple[Literal["train", "validation", "test"], ...] = Field(
        ("validation", "test"), description="Splits evaluated at the end of training."
    )
    worst_group_metric: Literal["loss", "reward_accuracy", "logprob_accuracy"] = Field(
        "loss",
        description="Validation metric whose worst group drives the group-robust plateau scheduler "
        "(the average is used for the other methods).",
    )


def flatten(config: BaseModel, prefix: str = "") -> dict[str, str]:
    """Flatten a config into dotted keys with string values, e.g. ``optim.learning_rate``.

    Only config sections nest; a field holding a mapping with user keys (e.g. a group-name map,
    whose keys may hold spaces or brackets) stays one key with a JSON value, so every key is a
    valid MLflow param name.
    """
    flat: dict[str, str] = {}
    for key in type(config).model_fields:
        value = getattr(config, key)
        name = f"{prefix}{key}"
        if isinstance(value, BaseModel):
            flat.update(flatten(value, prefix=f"{name}."))
        else:
            flat[name] = _as_text(value)
    return flat


def _as_text(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(_as_text(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True, default=str)
    if value is None:
        return "None"
    return str(value)
