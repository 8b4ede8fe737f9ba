"""The ``evaluate`` flow: a registered model (alias or version) or a checkpoint, evaluated per group
on a dataset and logged to MLflow: the job a nightly schedule runs on fresh data to catch a group
that drifts, and raise an alert when one does (``tasks.alerts``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from prefect import flow
from pydantic import Field

from grpo_core.config import Section
from grpo_core.data.config import DataConfig
from tasks.alerts import raise_drift_alert
from tasks.data import data_key, group_data
from tasks.evaluation import compare_with_training, open_evaluation_run, resolve_model
from tasks.run_config import ExperimentName, demo_config
from tasks.runs import FAIL_OPEN_RUNS_ON_ERROR, close_run
from tasks.stages import cache_dir, evaluate_split


class EvaluationConfig(Section):
    """What to evaluate, on which data."""

    name: ExperimentName = Field(
        "grpo-demo",
        min_length=1,
        description="Experiment whose registered model is evaluated (MLflow experiment name).",
    )
    model: str = Field(
        "champion",
        min_length=1,
        description="A registry alias (e.g. 'champion'), a version number, a models:/ URI, or a local checkpoint folder.",
    )
    data: DataConfig = Field(
        default_factory=lambda: demo_config().data.model_copy(update={"seed": 1}),
        description="The (fresh) grouped data to evaluate on; by default a new draw of the demo's opinion survey.",
    )
    splits: tuple[Literal["train", "validation", "test"], ...] = Field(
        ("test",), min_length=1, description="Splits to evaluate."
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="'auto' = CUDA when available."
    )
    batch_size: int = Field(32, ge=1, description="Pairs per forward pass.")
    output_dir: str = Field(
        "outputs", description="Folder for downloaded models and prepared data."
    )
    timeout_minutes: float = Field(
        60.0, gt=0, description="Kill an evaluation that runs longer than this."
    )
    drift_metric: Literal["reward_accuracy", "loss", "logprob_accuracy"] = Field(
        "reward_accuracy",
        description="Metric whose fall in any group since the model's training-time evaluation "
        "raises the drift alert.",
    )
    drift_threshold: float = Field(
        0.1,
        ge=0,
        description="A group whose drift_metric is worse than at training by more than this "
        "(metric units) marks the run 'alert' in MLflow and emits the drift event (README 'Drift alert').",
    )
    strict: bool = Field(
        False,
        description="Refuse data the model mostly cannot represent (over 20% of the response tokens "
        "unknown to its tokenizer) or whose groups differ from its training groups; otherwise warn.",
    )


@flow(
    name="evaluate",
    description="Per-group evaluation of a registered model or checkpoint, logged to MLflow.",
    **FAIL_OPEN_RUNS_ON_ERROR,
)
def evaluate(config: EvaluationConfig = EvaluationConfig()) -> dict[str, Any]:  # noqa: B008
    output = Path(config.output_dir).resolve()
    model = resolve_model(config.name, config.model, str(output / "models"))
    data = group_data(
        config.data, data_key(config.data, None, cache_dir()), str(output), cache_dir()
    )
    run_id = open_evaluation_run(config, model, data)
    metrics: dict[str, float] = {}
    for split in config.splits:
        metrics |= evaluate_split(
            model.checkpoint, data.data_dir, split, run_id, model.label,
            device=config.device, batch_size=config.batch_size, timeout_minutes=config.timeout_minutes,
            strict=config.strict,
        )  # fmt: skip
    drift = compare_with_training(run_id, model, metrics, data.slugs)
    alert = raise_drift_alert(
        run_id, model, drift, data.slugs, config.drift_metric, config.drift_threshold
    )
    close_run(run_id)
    return {
        "run_id": run_id,
        "model": model.as_json(),
        "metrics": metrics,
        "drift": drift,
        "alert": alert.as_json(),
    }
