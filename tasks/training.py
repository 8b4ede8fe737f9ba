"""Tasks: SFT, train one method x seed, evaluate a checkpoint per group. Each runs in a child process.

The child process (:mod:`tasks.worker`) frees GPU memory when it ends and is killed past the
config's time limit; its step metrics arrive here as events and go to the MLflow child run, its
progress into the Prefect log.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from prefect import task
from prefect.logging import get_run_logger

from grpo_core.run_config import RunConfig
from tasks import tracking
from tasks.subprocess_runner import run_worker
from tasks.worker import WorkerRequest

SUMMARY_METRICS = ("loss", "reward_accuracy", "logprob_accuracy")


def cache_dir() -> str:
    from grpo_core.lm.presets import default_cache_dir

    return str(default_cache_dir())


class _ProgressLog:
    """Logs a stage's progress at every 10% (the Prefect UI is no terminal for a progress bar)."""

    def __init__(self, logger, label: str):
        self.logger, self.label, self.shown = logger, label, {}

    def __call__(self, event: dict) -> None:
        stage, done, total = event["stage"], event["done"], max(event["total"], 1)
        decile = min(10, done * 10 // total)
        if decile > self.shown.get(stage, -1):
            self.shown[stage] = decile
            self.logger.info(
                "%s %s: %d/%d (%d%%)", self.label, stage, done, total, 100 * done // total
            )


def _worker(
    request: WorkerRequest, timeout_minutes: float, label: str, on_metrics=None
) -> dict[str, Any]:
    logger = get_run_logger()
    progress = _ProgressLog(logger, label)

    def on_event(event: dict) -> None:
        if event["event"] == "progress":
            progress(event)
        elif on_metrics is not None and event["event"] in ("step", "evaluation"):
            on_metrics(event["metrics"], event["step"])
            if event["event"] == "evaluation":
                logger.info(
                    "%s validation at step %d: %s",
                    label,
                    event["step"],
                    _headline(event["metrics"]),
                )

    return run_worker(
        request, on_event, on_text=lambda line: logger.info("%s | %s", label, line),
        timeout_s=timeout_minutes * 60,
    )  # fmt: skip


def _headline(metrics: dict[str, float]) -> str:
    keys = [k for k in metrics if "/worst_group/" in k or "/average/" in k]
    return ", ".join(
        f"{k.split('/', 2)[-1]}={metrics[k]:.4f}"
        for k in sorted(keys)
        if k.endswith(SUMMARY_METRICS)
    )


@task(name="sft")
def sft(config: RunConfig, data_dir: str) -> dict[str, str]:
    """The starting model of every method: the base model after SFT on the chosen responses (cached)."""
    request = WorkerRequest(
        stage="sft", config=config, data_dir=data_dir, device=config.device, cache_dir=cache_dir()
    )
    result = _worker(request, config.execution.timeout_minutes, "starting model:")
    get_run_logger().info("starting model: %s", result["start_model"]["path"])
    return result["start_model"]


@task(name="train-method", task_run_name="train-{method}-seed{seed}")
def train_method(
    config: RunConfig,
    method: str,
    seed: int,
    data_dir: str,
    start_model: dict[str, str],
    run_dir: str,
    child_run_id: str,
) -> dict[str, Any]:
    """Train one method with one seed; its steps are logged to the MLflow run ``child_run_id``."""
    mlflow = tracking.client()
    buffer = tracking.MetricBuffer(mlflow, child_run_id)
    request = WorkerRequest(
        stage="train", config=config, method=method, seed=seed, data_dir=data_dir,
        output_dir=run_dir, start_model=start_model, device=config.device, cache_dir=cache_dir(),
        resume=(Path(run_dir) / "checkpoints").exists(), final_evaluation=False,
    )  # fmt: skip
    try:
        result = _worker(
            request, config.execution.timeout_minutes, f"{method}/seed{seed}", on_metrics=buffer.add
        )
    finally:
        buffer.flush()
    final = {k: v for k, v in result["metrics"].items() if k.startswith("train/")}
    steps = int(final.get("train/steps", 0)) or None
    # The per-step keys arrived as events; these three exist only at the end.
    outcome = {
        k: final[k] for k in ("train/steps", "train/lr_cuts", "train/stopped_early") if k in final
    }
    tracking.log_metrics(mlflow, child_run_id, outcome, step=steps or 0)
    get_run_logger().info("%s seed %d trained: %s", method, seed, json.dumps(final))
    return {
        "method": method,
        "seed": seed,
        "run_id": child_run_id,
        "run_dir": run_dir,
        "steps": steps,
    }


@task(name="evaluate-split", task_run_name="evaluate-{split}-{label}")
def evaluate_split(
    checkpoint: str,
    data_dir: str,
    split: str,
    run_id: str,
    label: str,
    *,
    device: str = "auto",
    batch_size: int = 32,
    timeout_minutes: float = 60.0,
    step: int | None = None,
) -> dict[str, float]:
    """Per-group metrics of ``checkpoint`` on ``split`` (spec section 7), logged to MLflow run ``run_id``."""
    request = WorkerRequest(
        stage="evaluate", checkpoint=checkpoint, data_dir=data_dir, split=split,
        device=device, cache_dir=cache_dir(), batch_size=batch_size,
    )  # fmt: skip
    metrics = _worker(request, timeout_minutes, f"{label} {split}")["metrics"]
    tracking.log_metrics(tracking.client(), run_id, metrics, step=step or 0)
    get_run_logger().info("%s on %s: %s", label, split, _headline(metrics))
    return metrics
