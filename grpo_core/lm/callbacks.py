"""What a language-model run reports: flat metric keys of :mod:`grpo_core.names`, through callbacks."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from grpo_core import names
from grpo_core.loop import StepRecord


class RunCallback:
    """Receives a run's metrics as flat keys. Override what you need.

    Step keys (:func:`step_metrics`): ``train/loss``, ``train/learning_rate``, ``train/step_size``,
    ``train/grad_norm`` and ``train/<group quantity>/<slug>``; during SFT ``sft/loss``,
    ``sft/learning_rate`` and ``sft/grad_norm`` (:func:`sft_step_metrics`).
    Validation keys: ``eval/validation/...`` (:func:`grpo_core.evaluation.summarize`).
    """

    def on_step(self, record: StepRecord, metrics: Mapping[str, float]) -> None:
        """After every optimizer step, of SFT and of the preference stage."""

    def on_evaluation(self, step: int, metrics: Mapping[str, float]) -> None:
        """After every validation the plateau scheduler acts on (``eval.every_steps``)."""

    def on_end(self, metrics: Mapping[str, float]) -> None:
        """Once, with the final metrics (the content of ``metrics.json``)."""

    def on_warning(self, message: str) -> None:
        """Something the person running it should know (e.g. a damaged checkpoint was skipped)."""


def step_metrics(record: StepRecord, slugs: Sequence[str]) -> dict[str, float]:
    """Flat ``train/...`` keys of one :class:`StepRecord` of an unreplicated run."""
    metrics = {
        names.TRAIN_LOSS: float(record.loss),
        names.TRAIN_LEARNING_RATE: float(record.learning_rate),
        names.TRAIN_STEP_SIZE: float(record.step_size),
    }
    if record.grad_norm is not None:
        metrics[names.TRAIN_GRAD_NORM] = float(record.grad_norm)
    for quantity, values in (
        ("group_loss", record.group_losses),
        ("group_weight", record.group_weights),
        ("group_coefficient", record.coefficients),
    ):
        for slug, value in zip(slugs, values.tolist(), strict=True):
            metrics[names.train_group_key(quantity, slug)] = value
    return metrics


def sft_step_metrics(record: StepRecord) -> dict[str, float]:
    """``sft/loss`` (mean chosen NLL per token), ``sft/learning_rate`` and ``sft/grad_norm``."""
    metrics = {
        names.SFT_LOSS: float(record.loss),
        names.SFT_LEARNING_RATE: float(record.learning_rate),
    }
    if record.grad_norm is not None:
        metrics[names.SFT_GRAD_NORM] = float(record.grad_norm)
    return metrics


class CollapseWatch(RunCallback):
    """Flags a collapsed preference run: the gradient norm exactly 0, or the loss exactly the
    previous step's (every pair's reward margin the same, as when the policy stopped moving), for
    ``min_steps`` consecutive steps (all but the first of a shorter run of at least 3 steps)."""

    def __init__(self, min_steps: int = 10):
        self.min_steps = min_steps
        self.steps = self.streak = self.longest = 0
        self.last_loss: float | None = None

    def on_step(self, record: StepRecord, metrics: Mapping[str, float]) -> None:
        if names.TRAIN_LOSS not in metrics:  # SFT steps are not watched
            return
        loss = metrics[names.TRAIN_LOSS]
        stuck = metrics.get(names.TRAIN_GRAD_NORM) == 0.0 or loss == self.last_loss
        self.streak = self.streak + 1 if stuck else 0
        self.longest = max(self.longest, self.streak)
        self.steps += 1
        self.last_loss = loss

    def warning(self) -> str | None:
        """One line when the run collapsed, else None."""
        # The first step has no previous loss: a short run stuck from the start has steps - 1.
        short = 3 <= self.steps <= self.min_steps
        if not (self.longest >= self.min_steps or (short and self.longest >= self.steps - 1)):
            return None
        return (
            f"the run collapsed: for {self.longest} consecutive steps the gradient norm was 0 or "
            "the loss did not change (every reward alike); its results say nothing about the method"
        )
