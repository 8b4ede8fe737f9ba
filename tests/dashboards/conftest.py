"""Fixtures of the dashboard tests: a small MLflow store in the pipeline's layout, headless Chromium."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.dashboards.store import build_store

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

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
def store(tmp_path_factory) -> dict:
    """The store of :func:`tests.dashboards.store.build_store` (uri, experiment and run ids)."""
    return build_store(tmp_path_factory.mktemp("mlflow"))


@pytest.fixture(scope="session")
def browser():
    """Headless Debian Chromium driven by Playwright (a fresh temporary profile per launch)."""
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
