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
