"""The worker child process: failures and time limits surface as WorkerFailed with the cause."""

from __future__ import annotations

import pytest

from tasks.subprocess_runner import WorkerFailed, run_worker
from tasks.worker import WorkerRequest


def test_a_failing_worker_reports_its_error(tmp_path):
    request = WorkerRequest(
        stage="evaluate",
        checkpoint=str(tmp_path / "nothing"),
        data_dir=str(tmp_path),
        cache_dir=str(tmp_path),
    )
    lines: list[str] = []
    with pytest.raises(WorkerFailed, match="exit code 1") as error:
        run_worker(request, on_event=lambda e: None, on_text=lines.append, timeout_s=120)
    assert "nothing" in str(error.value), "the child's traceback tail names the missing checkpoint"
    assert lines, "the child's output is forwarded line by line"


def test_a_worker_past_its_time_limit_is_killed(tmp_path):
    request = WorkerRequest(
        stage="evaluate", checkpoint=str(tmp_path), data_dir=str(tmp_path), cache_dir=str(tmp_path)
    )
    with pytest.raises(WorkerFailed, match="killed after"):
        run_worker(request, on_event=lambda e: None, on_text=lambda line: None, timeout_s=0.5)
