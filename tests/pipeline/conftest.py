"""Fixtures of the pipeline tests: one Prefect test harness per session, a SQLite MLflow store per test."""

from __future__ import annotations

from pathlib import Path

import pytest

from grpo_core.config import EvalConfig, OptimConfig
from grpo_core.data.config import DataConfig, OpinionGeneratorConfig
from grpo_core.lm.config import SFTConfig
from tasks.run_config import ExecutionConfig, RunConfig

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def prefect_harness():
    """A temporary Prefect server for the whole session (~15 s to start, so once)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=90):
        yield


@pytest.fixture
def mlflow_store(tmp_path, monkeypatch) -> str:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri


def tiny_config(output_dir: Path, **updates) -> RunConfig:
    """The smallest meaningful experiment: 3 groups of built-in opinions, a tiny model, 3 steps."""
    config = RunConfig(
        name="pipeline-test",
        data=DataConfig(synthetic=OpinionGeneratorConfig(num_questions=60)),
        sft=SFTConfig(epochs=0.25),
        optim=OptimConfig(max_steps=3, batch_size=8),
        eval=EvalConfig(batch_size=64),
        execution=ExecutionConfig(output_dir=str(output_dir), timeout_minutes=10),
    )
    return config.model_copy(update=updates)
