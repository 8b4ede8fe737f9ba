"""Fixtures of the dashboard tests: a small MLflow store in the pipeline's layout (headless
Chromium is the session's ``browser`` fixture in ``tests/conftest.py``)."""

from __future__ import annotations

import os

import pytest

from tests.dashboards.store import build_store

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


@pytest.fixture(scope="session")
def store(tmp_path_factory) -> dict:
    """The store of :func:`tests.dashboards.store.build_store` (uri, experiment and run ids)."""
    return build_store(tmp_path_factory.mktemp("mlflow"))
