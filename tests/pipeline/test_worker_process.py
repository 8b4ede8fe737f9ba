"""The worker child process: failures and time limits surface as WorkerFailed with the cause."""

from __future__ import annotations

import pytest

from tasks.subprocess_runner import WorkerFailed, run_worker
from tasks.worker import REQUEST, EvaluateRequest, SFTRequest, TrainRequest


def test_a_failing_worker_reports_its_error(tmp_path):
    request = EvaluateRequest(
        checkpoint=str(tmp_path / "nothing"),
        data_dir=str(tmp_path),
        cache_dir=str(tmp_path),
    )
    lines: list[str] = []
    with pytest.raises(WorkerFailed, match="^evaluate failed: ") as error:
        run_worker(request, on_event=lambda e: None, on_text=lines.append, timeout_s=120)
    assert "nothing" in error.value.reason, "the child's own message names the missing checkpoint"
    assert "Traceback" not in error.value.reason, "the reason is one line, not a traceback"


def test_a_worker_past_its_time_limit_is_killed(tmp_path):
    request = EvaluateRequest(
        checkpoint=str(tmp_path), data_dir=str(tmp_path), cache_dir=str(tmp_path)
    )
    with pytest.raises(WorkerFailed, match="killed after"):
        run_worker(request, on_event=lambda e: None, on_text=lambda line: None, timeout_s=0.5)


def test_requests_are_typed_per_stage_and_round_trip_through_json(tmp_path):
    from grpo_core.lm.config import ModelConfig, SFTConfig
    from grpo_core.lm.recipe import TrainingRecipe

    common = {"data_dir": str(tmp_path), "cache_dir": str(tmp_path)}
    requests = [
        SFTRequest(model=ModelConfig(), sft=SFTConfig(), max_grad_norm=10.0, **common),
        TrainRequest(recipe=TrainingRecipe(), method="gr_ipo", seed=3, output_dir="run", **common),
        EvaluateRequest(checkpoint="run", split="validation", **common),
    ]
    for request in requests:
        assert REQUEST.validate_json(request.model_dump_json()) == request
    with pytest.raises(ValueError, match="gr_dpo"):
        TrainRequest(recipe=TrainingRecipe(), method="grpo", seed=0, output_dir="run", **common)
    with pytest.raises(ValueError, match="checkpoint"):
        REQUEST.validate_python({"stage": "evaluate", **common})
    with pytest.raises(ValueError):
        REQUEST.validate_python({"stage": "evaluate", "method": "ipo", "checkpoint": "x", **common})
