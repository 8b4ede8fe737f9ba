"""Test-session isolation: Prefect, MLflow and the model cache never touch the user's own state."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

_SESSION_DIR = Path(tempfile.mkdtemp(prefix="grpo-tests-"))


def pytest_configure(config) -> None:
    # Set before any test module imports prefect (its settings are read at import).
    defaults = {
        "PREFECT_HOME": str(_SESSION_DIR / "prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
        "DO_NOT_TRACK": "true",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "GRPO_CACHE_DIR": str(_SESSION_DIR / "cache"),
    }
    for key, value in defaults.items():
        os.environ[key] = value
    for key in ("PREFECT_API_URL", "MLFLOW_TRACKING_URI"):
        os.environ.pop(key, None)


def pytest_unconfigure(config) -> None:
    shutil.rmtree(_SESSION_DIR, ignore_errors=True)


MARKERS_OF_FIXTURES = {
    "prefect_harness": "integration",  # a temporary Prefect server for the session
    "browser": "browser",  # headless Chromium
}
"""A test that uses one of these fixtures starts what its marker says, wherever it is written."""


def pytest_collection_modifyitems(config, items) -> None:
    for item in items:
        for fixture in set(item.fixturenames) & MARKERS_OF_FIXTURES.keys():
            item.add_marker(MARKERS_OF_FIXTURES[fixture])
