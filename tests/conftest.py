"""Test-session isolation: Prefect, MLflow and the model cache never touch the user's own state."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

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


CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def browser():
    """Headless Debian Chromium driven by Playwright (a fresh temporary profile per launch): one
    for the session, as Playwright's sync API runs one at a time."""
    if not CHROMIUM.exists():
        pytest.skip(
            f"headless Chromium is not installed at {CHROMIUM} (apt-get install chromium; .ci/run does)"
        )
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')"
    )
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()
