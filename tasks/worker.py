"""The training/evaluation worker: one stage of the pipeline in a child process.

``python -m tasks.worker REQUEST.json`` runs one request (a :data:`WorkerRequest`: SFT, one method's
training, or one evaluation) through ``grpo_core.lm`` and reports on stdout as JSON lines
(``{"event": ...}``), which the parent task turns into MLflow metrics and Prefect log lines. A child
process is the unit that frees GPU memory when it ends and that can be killed when it hangs. No
prefect or mlflow import here.
"""

from __future__ import annotations

import json
import sys
import time
import traceback
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from grpo_core.lm.config import ModelConfig, SFTConfig
from grpo_core.lm.recipe import TrainingRecipe
from grpo_core.methods import Method
from grpo_core.names import Split


class _Request(BaseModel):
    """What every stage needs: where the data is, where to run, where the caches are."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    data_dir: str = Field(description="A prepared data folder.")
    device: str = Field("auto", description="'auto', 'cpu', 'cuda' or 'cuda:N'.")
    cache_dir: str = Field(
        description="Models, SFT outputs and reference log-probs are cached here."
    )


class SFTRequest(_Request):
    """Prepare the starting model: the base model, fine-tuned on the chosen responses (cached)."""

    stage: Literal["sft"] = "sft"
    model: ModelConfig
    sft: SFTConfig
    max_grad_norm: float | None = Field(description="Gradient clipping of the SFT steps.")
    prompts_rendered: bool = Field(False, description="The prompts already hold the chat template.")
    output_dir: str | None = Field(None, description="Where to write it (default: the cache).")


class StartModelRef(BaseModel):
    """A starting model as the SFT stage returns it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    path: str
    fingerprint: str


class TrainRequest(_Request):
    """Train one method with one seed."""

    stage: Literal["train"] = "train"
    recipe: TrainingRecipe
    method: Method
    seed: int
    output_dir: str = Field(description="The run folder: checkpoints, metrics.json, timing.json.")
    start_model: StartModelRef | None = Field(None, description="The SFT output to start from.")
    resume: bool = Field(False, description="Continue from the newest checkpoint.")
    final_evaluation: bool = Field(True, description="Evaluate recipe.eval.splits after training.")


class EvaluateRequest(_Request):
    """Per-group metrics of a checkpoint on one split."""

    stage: Literal["evaluate"] = "evaluate"
    checkpoint: str = Field(description="Checkpoint, run folder or model folder to evaluate.")
    split: Split = "test"
    batch_size: int = Field(32, ge=1, description="Pairs per forward pass.")
    strict: bool = Field(False, description="Refuse data that does not suit the model.")
    trust_remote_code: bool = Field(
        False,
        description="Let the starting model's folder run its own code (the run config's word, "
        "never the checkpoint's).",
    )
    start_model: str | None = Field(
        None, description="The run's starting model (default: the one its run.json names)."
    )


WorkerRequest = Annotated[SFTRequest | TrainRequest | EvaluateRequest, Field(discriminator="stage")]
"""One request per stage, told apart by ``stage``."""

REQUEST = TypeAdapter(WorkerRequest)


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

    def on_warning(self, message: str) -> None:
        emit("warning", message=message)

    def progress(self, stage: str, done: int, total: int) -> None:
        now = time.monotonic()
        if done >= total or now - self.last_progress > 0.5:
            self.last_progress = now
            emit("progress", stage=stage, done=done, total=total)


def run_stage(request: SFTRequest | TrainRequest | EvaluateRequest) -> dict[str, Any]:
    """Carry out the stage ``request`` asks for; the ``result`` event's fields."""
    from grpo_core.lm.policy import resolve_device

    device = resolve_device(request.device)
    reporter = _Reporter()
    if isinstance(request, SFTRequest):
        from grpo_core.lm.start_model import prepare_sft_model

        start = prepare_sft_model(
            request.model, request.sft, request.data_dir, request.output_dir,
            max_grad_norm=request.max_grad_norm, prompts_rendered=request.prompts_rendered,
            device=device, cache_dir=request.cache_dir, progress=reporter.progress,
        )  # fmt: skip
        return {"start_model": {"path": start.path, "fingerprint": start.fingerprint}}
    if isinstance(request, TrainRequest):
        from grpo_core.lm.callbacks import CollapseWatch
        from grpo_core.lm.start_model import StartModel
        from grpo_core.lm.training import train_method

        start = StartModel(**request.start_model.model_dump()) if request.start_model else None
        from grpo_core.lm.training import TIMING_JSON

        watch = CollapseWatch()
        metrics = train_method(
            request.recipe, request.method, request.seed, request.data_dir, request.output_dir,
            device=device, cache_dir=request.cache_dir, resume=request.resume,
            callbacks=[reporter, watch], progress=reporter.progress, start_model=start,
            final_splits=None if request.final_evaluation else (),
        )  # fmt: skip
        if (collapsed := watch.warning()) is not None:
            emit("warning", message=collapsed)
        timing = json.loads((Path(request.output_dir) / TIMING_JSON).read_text())
        return {"metrics": metrics, "timing": timing}
    from grpo_core.lm.evaluate import evaluate_checkpoint

    pairs: list[dict] = []
    metrics = evaluate_checkpoint(
        request.checkpoint, request.data_dir, request.split,
        device=device, batch_size=request.batch_size, cache_dir=request.cache_dir,
        progress=reporter.progress, strict=request.strict,
        trust_remote_code=request.trust_remote_code, start_model=request.start_model,
        on_warning=lambda message: emit("warning", message=message), on_pairs=pairs.append,
    )  # fmt: skip
    return {"metrics": metrics, "pairs": pairs[0] if pairs else None}


def quiet_library_warnings() -> None:
    """Drop a deprecation notice that transformers raises from inside peft on every LoRA model; it
    says nothing to the person running the pipeline and would reach every log."""
    warnings.filterwarnings(
        "ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning
    )


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m tasks.worker REQUEST.json", file=sys.stderr)
        return 2
    request = REQUEST.validate_json(Path(args[0]).read_text())
    quiet_library_warnings()
    try:
        result = run_stage(request)
    except Exception as error:  # one line for the parent; an unexpected error's traceback to stderr
        from grpo_core.loop import NonFiniteError

        if not isinstance(error, NonFiniteError):  # the guard's own stop says all in its line
            traceback.print_exc()
        emit("error", kind=type(error).__name__, message=str(error))
        return 1
    emit("result", **result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
