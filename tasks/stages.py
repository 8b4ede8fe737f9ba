"""Tasks: the worker stages (SFT, train one method x seed, evaluate a checkpoint per group), each in
a child process.

The child process (:mod:`tasks.worker`) frees GPU memory when it ends and is killed past the
config's time limit; its step metrics arrive here as events and go to the MLflow child run, its
progress into the Prefect log.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from prefect import task
from prefect.logging import get_run_logger

from grpo_core import names
from grpo_core.methods import Method
from grpo_core.progress import Milestones
from tasks import tracking
from tasks.records import StartModelRef, TrainedRun
from tasks.run_config import RunConfig
from tasks.subprocess_runner import Event, WorkerFailed, run_worker
from tasks.worker import EvaluateRequest, SFTRequest, TrainRequest, WorkerRequest


class _NoTracebackForExpectedFailures(logging.Filter):
    """Prefect logs a failed task run with its traceback; for a worker that failed (its reason is
    in the message) or a tracking server that is down, the traceback of this process says nothing."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(
            record.exc_info[1], WorkerFailed | tracking.TrackingServerDown
        ):
            record.exc_info, record.exc_text = None, None
        return True


logging.getLogger("prefect.task_runs").addFilter(_NoTracebackForExpectedFailures())

UNLOGGED_METRICS = "unlogged-metrics.jsonl"
"""Step metrics that the tracking server did not take, sent when the run is resumed."""
STEP_METRICS = "step-metrics.jsonl"
"""Every step metric of the run folder's training, replayed to the run that trains it again."""


def cache_dir() -> str:
    from grpo_core.lm.presets import default_cache_dir

    return str(default_cache_dir())


def _worker(
    request: WorkerRequest,
    timeout_minutes: float,
    label: str,
    on_metrics=None,
    warnings=None,
    env: dict[str, str] | None = None,
) -> Event:
    """Run ``request`` in the worker; its events become log lines, metrics and warnings."""
    logger = get_run_logger()
    progress = Milestones(logger.info, label)

    def on_event(event: dict) -> None:
        if event["event"] == "progress":
            progress(event["stage"], event["done"], event["total"])
        elif event["event"] == "warning":
            logger.warning("%s: %s", label, event["message"])
            if warnings is not None:
                warnings.append(event["message"])
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
        timeout_s=timeout_minutes * 60, env=env,
    )  # fmt: skip


def _headline(metrics: dict[str, float]) -> str:
    """``worst_group/loss=... average/loss=...`` of the headline keys present, any split."""
    parsed = [(names.EvalKey.parse(k), v) for k, v in metrics.items()]
    shown = sorted(
        (k.aggregate, v) for k, v in parsed if k is not None and k.aggregate in names.HEADLINE
    )
    return ", ".join(f"{key}={value:.4f}" for key, value in shown)


@task(name="sft")
def sft(config: RunConfig, data_dir: str) -> StartModelRef:
    """The starting model of every method: the base model after SFT on the chosen responses (cached)."""
    request = SFTRequest(
        model=config.model, sft=config.sft, max_grad_norm=config.optim.max_grad_norm,
        prompts_rendered=config.data.renders_chat_template, data_dir=data_dir, device=config.device,
        cache_dir=cache_dir(),
    )  # fmt: skip
    result = _worker(request, config.execution.timeout_minutes, "starting model:")
    start_model = StartModelRef(**result["start_model"])
    get_run_logger().info("starting model: %s", start_model.path)
    return start_model


@task(name="train-run", task_run_name="train-{method}-seed{seed}")
def train_run(
    config: RunConfig,
    method: Method,
    seed: int,
    data_dir: str,
    start_model: StartModelRef,
    run_dir: str,
    child_run_id: str,
    worker_env: dict[str, str] | None = None,
) -> TrainedRun:
    """Train one method with one seed; its steps are logged to the MLflow run ``child_run_id``
    (``worker_env``: added to the worker process's environment, e.g. the GPU it may use)."""
    mlflow = tracking.client()
    # A tracking outage does not stop training; what it could not log waits in the run folder.
    spill = Path(run_dir) / UNLOGGED_METRICS
    buffer = tracking.MetricBuffer(
        mlflow, child_run_id, spill=spill, history=Path(run_dir) / STEP_METRICS
    )
    request = TrainRequest(
        recipe=config.recipe(method), method=method, seed=seed, data_dir=data_dir,
        output_dir=run_dir, start_model=start_model, device=config.device,
        cache_dir=cache_dir(), resume=(Path(run_dir) / "checkpoints").exists(), final_evaluation=False,
    )  # fmt: skip
    warnings: list[str] = []
    try:
        result = _worker(
            request, config.execution.timeout_minutes, f"{method}/seed{seed}",
            on_metrics=buffer.add, warnings=warnings, env=worker_env,
        )  # fmt: skip
    except WorkerFailed as failure:  # the run says why; the flow goes on with the others
        buffer.flush()
        tracking.fail_run(mlflow, child_run_id, failure.reason)
        get_run_logger().error("%s seed %d failed: %s", method, seed, failure.reason)
        raise
    try:
        buffer.flush()
    except tracking.TrackingServerDown as error:
        raise tracking.TrackingServerDown(
            f"{method} seed {seed} trained (checkpoints in {run_dir}), but {error}"
        ) from None
    final = result["metrics"]
    steps = int(final.get(names.TRAIN_STEPS, 0)) or None
    # The per-step keys arrived as events; these exist only at the end.
    outcome = {k: final[k] for k in names.TRAIN_OUTCOME if k in final}
    timing = result.get("timing", {})
    outcome |= {
        names.timing_key(k): timing[k] for k in names.TIMING_KEYS if timing.get(k) is not None
    }
    tracking.log_metrics(mlflow, child_run_id, outcome, step=steps or 0)
    if warnings:  # e.g. a collapsed run: finished, but its numbers mean nothing
        tracking.set_tags(mlflow, child_run_id, {names.WARNINGS: " | ".join(warnings)[:5000]})
    get_run_logger().info("%s seed %d trained: %s", method, seed, json.dumps(final))
    return TrainedRun(
        method=method, seed=seed, run_id=child_run_id, run_dir=run_dir, steps=steps,
        timing={k: timing[k] for k in names.TIMING_KEYS if timing.get(k) is not None},
    )  # fmt: skip


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
    strict: bool = False,
    worker_env: dict[str, str] | None = None,
    trust_remote_code: bool = False,
    start_model: str | None = None,
) -> dict[str, float]:
    """Per-group metrics of ``checkpoint`` on ``split`` (every group's loss and reward accuracy, the
    worst group's and the average), logged to MLflow run
    ``run_id`` with the per-pair values as an artifact (the promotion evidence); what made the
    evaluation doubtful goes to the log and the ``grpo.warnings`` tag. ``trust_remote_code`` and
    ``start_model`` come from the run config that trained the checkpoint, never from the checkpoint."""
    request = EvaluateRequest(
        checkpoint=checkpoint, data_dir=data_dir, split=split,
        device=device, cache_dir=cache_dir(), batch_size=batch_size, strict=strict,
        trust_remote_code=trust_remote_code, start_model=start_model,
    )  # fmt: skip
    warnings: list[str] = []
    result = _worker(
        request, timeout_minutes, f"{label} {split}", warnings=warnings, env=worker_env
    )
    metrics = result["metrics"]
    client = tracking.client()
    tracking.log_metrics(client, run_id, metrics, step=step or 0)
    if result.get("pairs"):
        tracking.log_json(client, run_id, result["pairs"], names.pairs_artifact(split))
    if warnings:
        tracking.set_tags(client, run_id, {names.WARNINGS: " | ".join(warnings)[:5000]})
    get_run_logger().info("%s on %s: %s", label, split, _headline(metrics))
    return metrics
