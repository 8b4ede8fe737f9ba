"""The training/evaluation worker: one stage of the pipeline in a child process.

``python -m tasks.worker REQUEST.json`` runs SFT, one method's training, or one evaluation through
``grpo_core.lm.run`` and reports on stdout as JSON lines (``{"event": ...}``), which the parent task
turns into MLflow metrics and Prefect log lines. A child process is the unit that frees GPU memory
when it ends and that can be killed when it hangs. No prefect or mlflow import here.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from grpo_core.run_config import RunConfig


class WorkerRequest(BaseModel):
    """What one worker process does."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    stage: str = Field(description="'sft', 'train' or 'evaluate'.")
    config: RunConfig | None = Field(None, description="The run config (sft, train).")
    method: str | None = Field(None, description="The method (train).")
    seed: int = Field(0, description="The seed (train).")
    data_dir: str = Field(description="A prepared data folder.")
    output_dir: str | None = Field(None, description="Run folder (train) or SFT output (sft).")
    checkpoint: str | None = Field(
        None, description="Checkpoint or run folder to evaluate (evaluate)."
    )
    split: str = Field("test", description="Split to evaluate (evaluate).")
    start_model: dict[str, str] | None = Field(
        None, description="The SFT output to start from (train)."
    )
    device: str = Field("auto", description="'auto', 'cpu' or 'cuda'.")
    cache_dir: str = Field(
        description="Models, SFT outputs and reference log-probs are cached here."
    )
    resume: bool = Field(False, description="Continue from the newest checkpoint (train).")
    batch_size: int = Field(32, description="Evaluation batch size (evaluate).")
    final_evaluation: bool = Field(
        True, description="Evaluate config.eval.splits after training (train)."
    )


def emit(event: str, **fields: Any) -> None:
    sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
    sys.stdout.flush()


class _Reporter:
    """Forwards every step, validation and the final metrics as events; progress at most 2 per second."""

    def __init__(self) -> None:
        self.last_progress = 0.0

    def on_step(self, record, metrics: Mapping[str, float]) -> None:
        emit("step", step=record.step, metrics=dict(metrics))

    def on_evaluation(self, step: int, metrics: Mapping[str, float]) -> None:
        emit("evaluation", step=step, metrics=dict(metrics))

    def on_end(self, metrics: Mapping[str, float]) -> None:
        emit("end", metrics=dict(metrics))

    def progress(self, stage: str, done: int, total: int) -> None:
        now = time.monotonic()
        if done >= total or now - self.last_progress > 0.5:
            self.last_progress = now
            emit("progress", stage=stage, done=done, total=total)


def run(request: WorkerRequest) -> dict[str, Any]:
    from grpo_core.lm.policy import resolve_device
    from grpo_core.lm.run import StartModel, evaluate_checkpoint, prepare_sft_model, train_method

    device = resolve_device(request.device)
    reporter = _Reporter()
    if request.stage == "sft":
        start = prepare_sft_model(
            request.config, request.data_dir, request.output_dir,
            device=device, cache_dir=request.cache_dir, progress=reporter.progress,
        )  # fmt: skip
        return {"start_model": {"path": start.path, "fingerprint": start.fingerprint}}
    if request.stage == "train":
        start = StartModel(**request.start_model) if request.start_model else None
        metrics = train_method(
            request.config, request.method, request.seed, request.data_dir, request.output_dir,
            device=device, cache_dir=request.cache_dir, resume=request.resume,
            callbacks=[reporter], progress=reporter.progress, start_model=start,
            final_splits=None if request.final_evaluation else (),
        )  # fmt: skip
        return {"metrics": metrics}
    if request.stage == "evaluate":
        metrics = evaluate_checkpoint(
            request.checkpoint, request.data_dir, request.split,
            device=device, batch_size=request.batch_size, cache_dir=request.cache_dir,
            progress=reporter.progress,
        )  # fmt: skip
        return {"metrics": metrics}
    raise ValueError(f"unknown stage {request.stage!r}")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m tasks.worker REQUEST.json", file=sys.stderr)
        return 2
    request = WorkerRequest.model_validate_json(Path(args[0]).read_text())
    emit("result", **run(request))
    return 0


if __name__ == "__main__":
    sys.exit(main())
