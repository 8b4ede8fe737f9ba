"""The dashboard served by ``streamlit run`` and the report's HTML, both opened in headless Chromium.

Screenshots land in the test's tmp folder and are copied to /tmp/dashboard.png,
/tmp/dashboard_synthetic.png and /tmp/report.png for a person to look at.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from dashboards.report import build_report
from grpo_cli.dashboard_cmd import streamlit_command
from tests.dashboards import store as layout

pytestmark = pytest.mark.browser

LOAD_TIMEOUT_MS = 60_000
PLOTS = ".js-plotly-plot"
EXCEPTION = '[data-testid="stException"]'


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def dashboard(browser, store, tmp_path_factory):
    """``streamlit run dashboards/app.py`` on a free loopback port; yields its URL."""
    folder = tmp_path_factory.mktemp("streamlit")
    port = free_port()
    log = (folder / "streamlit.log").open("w")
    process = subprocess.Popen(
        streamlit_command(store["uri"], port), stdout=log, stderr=subprocess.STDOUT, cwd=folder
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, (
                f"streamlit exited: {(folder / 'streamlit.log').read_text()}"
            )
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as answer:
                    if answer.read() == b"ok":
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, (
                "streamlit did not answer its health check within 60 s"
            )
            time.sleep(0.3)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def load(browser, url: str, min_plots: int):
    """Open ``url``, wait until the script has run and ``min_plots`` plotly charts have drawn."""
    page = browser.new_page(viewport={"width": 1500, "height": 1000})
    page.goto(url)
    page.get_by_text("Read-only view of MLflow").or_(page.locator(EXCEPTION)).first.wait_for(
        timeout=LOAD_TIMEOUT_MS
    )
    assert page.locator(EXCEPTION).count() == 0, (
        f"Streamlit exception: {page.locator(EXCEPTION).first.inner_text()}"
    )
    page.wait_for_function(
        f"document.querySelectorAll('{PLOTS} .main-svg').length >= {min_plots}",
        timeout=LOAD_TIMEOUT_MS,
    )
    return page


def chart_titles(page) -> list[str]:
    return page.locator(f"{PLOTS} .gtitle").all_text_contents()


def screenshot(page, path: Path, copy_to: str) -> None:
    """A full-length screenshot: Streamlit scrolls inside its main block, so grow the viewport to it."""
    height = page.evaluate("document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
    page.set_viewport_size({"width": 1500, "height": height + 40})
    page.wait_for_timeout(800)  # plotly redraws at the new width
    page.screenshot(path=str(path), full_page=True)
    shutil.copy(path, copy_to)


def test_dashboard_renders_the_group_fairness_views(browser, dashboard, tmp_path):
    page = load(browser, dashboard, min_plots=5)
    titles = " | ".join(chart_titles(page))
    for title in (  # reward accuracy first: comparable across losses and betas
        "Test reward accuracy per group",
        "Worst-group and average reward accuracy over training",
        "Group weights of the group-robust runs",
        "Test loss per group",  # the evaluation runs' view
    ):
        assert title in titles, f"expected a chart titled {title!r}, got {titles}"
    assert page.locator(f"{PLOTS} .barlayer .point").count() >= 6, "bars for 3 groups x 2 methods"
    assert page.get_by_text("worst", exact=True).count() >= 2, (
        "each method's worst group is labelled"
    )
    assert page.get_by_text("India (Current national sample)").count() >= 1, (
        "group names, not slugs"
    )
    assert page.locator('[data-testid="stAlertContentError"]').count() == 0
    screenshot(page, tmp_path / "dashboard.png", "/tmp/dashboard.png")
    page.close()


def test_dashboard_renders_the_synthetic_benchmark(browser, dashboard, tmp_path):
    page = load(browser, f"{dashboard}/?experiment={layout.SYNTHETIC_EXPERIMENT}", min_plots=1)
    assert any("Synthetic benchmark" in t for t in chart_titles(page))
    subplot_titles = page.locator(f"{PLOTS} .annotation-text").all_text_contents()
    assert (
        "uneven-imbalanced · IPO family" in subplot_titles
        and "even-imbalanced · max reward error" in subplot_titles
    )
    screenshot(page, tmp_path / "dashboard_synthetic.png", "/tmp/dashboard_synthetic.png")
    page.close()


def test_report_opens_offline_with_its_figures(browser, store, tmp_path):
    path = build_report(store["uri"], store["parent"], tmp_path / "report")
    page = browser.new_page(viewport={"width": 1300, "height": 1000})
    requested, errors = [], []
    page.route(
        "**/*",
        lambda route: (
            route.continue_()
            if route.request.url.startswith("file:")
            else (requested.append(route.request.url), route.abort())
        ),
    )
    page.on(
        "console", lambda message: errors.append(message.text) if message.type == "error" else None
    )
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(path.as_uri())
    page.wait_for_load_state("load")
    sizes = page.eval_on_selector_all(
        "img", "images => images.map(i => [i.complete, i.naturalWidth])"
    )
    assert len(sizes) == 5 and all(done and width > 300 for done, width in sizes), (
        f"5 decoded figures expected (bars of loss and accuracy, gaps, curves, weights), got {sizes}"
    )
    assert requested == [] and errors == [], (
        f"the report must open offline without errors: {requested} {errors}"
    )
    assert page.locator("h2").all_inner_texts() == [
        "Per-group metrics",
        "Across seeds",
        "Over training",
    ]
    page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
    shutil.copy(tmp_path / "report.png", "/tmp/report.png")
    page.close()
