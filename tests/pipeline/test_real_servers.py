"""Integration with real servers on loopback: Prefect server + process worker + MLflow server.

The project's own prefect.yaml is deployed with `prefect deploy --all`; the `experiment` deployment
runs a tiny config through the worker; the runs are read back from MLflow over HTTP, and its
fairness-report link is followed from the Prefect UI to the MLflow UI in headless Chromium.
"""

from __future__ import annotations

import json
import os
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from tests.pipeline.conftest import REPO_ROOT, tiny_config
from tests.pipeline.servers import (
    BIN,
    Service,
    WebhookReceiver,
    free_port,
    mlflow_server_command,
    run,
    wait_healthy,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    root = tmp_path_factory.mktemp("servers")
    prefect_port, mlflow_port = free_port(), free_port()
    env = {
        **os.environ,
        "PREFECT_HOME": str(root / "prefect-home"),
        "PREFECT_API_URL": f"http://127.0.0.1:{prefect_port}/api",
        "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{mlflow_port}",
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        "GRPO_PROJECT_DIR": str(REPO_ROOT),
        "GRPO_CACHE_DIR": str(root / "cache"),
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    services = []
    try:
        prefect = Service(
            [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(prefect_port)],
            root / "prefect-server.log", env,
        )  # fmt: skip
        services.append(prefect)
        mlflow = Service(mlflow_server_command(mlflow_port, root), root / "mlflow-server.log", env)
        services.append(mlflow)
        wait_healthy(f"http://127.0.0.1:{prefect_port}/api/health", prefect.process, prefect.log)
        wait_healthy(f"http://127.0.0.1:{mlflow_port}/health", mlflow.process, mlflow.log)
        run([str(BIN / "prefect"), "work-pool", "create", "grpo-local", "--type", "process"], env)
        run([str(BIN / "prefect"), "--no-prompt", "deploy", "--all"], env, cwd=REPO_ROOT)
        worker = Service(
            [str(BIN / "prefect"), "worker", "start", "--pool", "grpo-local"],
            root / "worker.log", env, cwd=REPO_ROOT,
        )  # fmt: skip
        services.append(worker)
        yield {
            "env": env,
            "root": root,
            "mlflow": f"http://127.0.0.1:{mlflow_port}",
            "worker": worker,
        }
    finally:
        for service in reversed(services):
            service.stop()


def mlflow_api(base: str, path: str, body: dict | None = None) -> dict:
    url = f"{base}/api/2.0/mlflow/{path}"
    data = None
    if body is not None:
        data = json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def test_deployments_from_prefect_yaml_exist_with_schedules(servers):
    out = run([str(BIN / "prefect"), "deployment", "ls"], servers["env"])
    for name in (
        "experiment/experiment",
        "evaluate/nightly-evaluation",
        "synthetic/weekly-synthetic",
        "sweep/sweep",
    ):
        assert name in out, f"deployment {name} missing from:\n{out}"
    schedules = run(
        [str(BIN / "prefect"), "deployment", "schedule", "ls", "evaluate/nightly-evaluation"],
        servers["env"],
    )
    assert "0 2 * * *" in schedules


def test_experiment_deployment_runs_through_the_worker_and_lands_in_mlflow(servers):
    config = tiny_config(servers["root"] / "outputs", name="integration-test")
    params = json.dumps({"config": config.model_dump(mode="json")})
    out = run(
        [str(BIN / "prefect"), "deployment", "run", "experiment/experiment", "--params", params,
         "--watch", "--watch-timeout", "900"],
        servers["env"], timeout=960,
    )  # fmt: skip
    assert "Completed" in out, (
        f"flow run did not complete:\n{out[-3000:]}\nworker log:\n{servers['worker'].log.read_text()[-4000:]}"
    )

    # Read the runs back over HTTP from the MLflow server
    base = servers["mlflow"]
    experiment = mlflow_api(
        base,
        "experiments/get-by-name?"
        + urllib.parse.urlencode({"experiment_name": "integration-test"}),
    )
    runs = mlflow_api(
        base,
        "runs/search",
        {"experiment_ids": [experiment["experiment"]["experiment_id"]], "max_results": 50},
    )["runs"]
    tags = [{t["key"]: t["value"] for t in r["data"].get("tags", [])} for r in runs]
    parents = [t for t in tags if t.get("grpo.run_type") == "experiment"]
    children = [
        (r, t) for r, t in zip(runs, tags, strict=True) if t.get("grpo.run_type") == "train"
    ]
    assert len(parents) == 1 and parents[0].get("prefect.flow_run_id")
    assert sorted(t["grpo.method"] for _, t in children) == ["gr_ipo", "ipo"]
    for child, _ in children:
        keys = {m["key"] for m in child["data"]["metrics"]}
        assert {
            "eval/test/worst_group/loss",
            "eval/test/worst_group/reward_accuracy",
            "train/loss",
        } <= keys
    alias = mlflow_api(
        base,
        "registered-models/alias?"
        + urllib.parse.urlencode({"name": "integration-test-policy", "alias": "champion"}),
    )
    assert alias["model_version"]["version"] in {"1", "2"}


REPORT_LINK_TEXT = "Group fairness report (HTML)"
UI_TIMEOUT_MS = 120_000


def report_frame(page, timeout_s: float = UI_TIMEOUT_MS / 1000):
    """The frame of ``page`` (the page itself or an iframe of the MLflow artifact viewer) that
    shows the report's heading, once it has rendered."""
    deadline = time.monotonic() + timeout_s
    while True:
        for frame in page.frames:
            if frame.locator("h1", has_text="GRPO report:").count():
                return frame
        assert time.monotonic() < deadline, f"no report heading on {page.url}"
        page.wait_for_timeout(500)


@pytest.mark.browser
def test_fairness_report_link_opens_from_the_prefect_ui(servers, browser, tmp_path):
    # Given the experiment flow run of the test above, and its fairness-report link artifact
    prefect_api = servers["env"]["PREFECT_API_URL"]
    request = urllib.request.Request(
        f"{prefect_api}/artifacts/filter",
        data=json.dumps({"artifacts": {"key": {"any_": ["fairness-report"]}}}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        artifacts = json.loads(response.read())
    if not artifacts:
        pytest.skip("no fairness-report artifact: run it with the experiment deployment test")
    (artifact,) = artifacts
    assert artifact["data"].startswith(f"[{REPORT_LINK_TEXT}](")  # stored as markdown
    ui = prefect_api.removesuffix("/api")
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        # When a user opens the artifact in the Prefect UI and follows its link
        page.goto(f"{ui}/artifacts/key/fairness-report")  # the key's timeline; open its latest
        page.get_by_role("link", name=artifact["id"][:8]).click(timeout=UI_TIMEOUT_MS)
        anchor = page.get_by_role("link", name=REPORT_LINK_TEXT)
        anchor.wait_for(timeout=UI_TIMEOUT_MS)
        link = anchor.get_attribute("href")
        page.screenshot(path=str(tmp_path / "prefect-artifact.png"), full_page=True)
        assert link == artifact["data"].rsplit("](", 1)[1].removesuffix(")")
        assert link.startswith(f"{servers['mlflow']}/#/experiments/")
        assert link.endswith("/artifacts/report/report.html")
        page.goto(link)

        # Then the MLflow UI's artifact viewer renders the report of that flow run
        with urllib.request.urlopen(
            f"{prefect_api}/flow_runs/{artifact['flow_run_id']}", timeout=30
        ) as response:
            flow_run_name = json.loads(response.read())["name"]
        report = report_frame(page)
        heading = report.locator("h1", has_text="GRPO report:")
        assert heading.inner_text() == f"GRPO report: {flow_run_name}"
        assert report.get_by_role("heading", name="Per-group metrics", exact=True).count() == 1
        page.screenshot(path=str(tmp_path / "fairness-report.png"))
    except Exception:
        page.screenshot(path=str(tmp_path / "failure.png"), full_page=True)
        raise
    finally:
        print(f"screenshots in {tmp_path}")
        page.close()


def test_sweep_deployment_runs_on_dask_through_the_worker_and_lands_in_mlflow(servers):
    # Given the sweep deployment triggered as from the UI: 2 settings x 1 seed on a Dask LocalCluster
    run_config = tiny_config(
        servers["root"] / "outputs", name="integration-sweep", methods=("gr_ipo",)
    )
    params = {
        "config": {
            "run": run_config.model_dump(mode="json"),
            "grid": {"group_weights.robust_mix": [0.0, 1.0]},
            "runner": {"kind": "dask", "dask_workers": 2},
        }
    }
    out = run(
        [str(BIN / "prefect"), "deployment", "run", "sweep/sweep", "--params", json.dumps(params),
         "--watch", "--watch-timeout", "600"],
        servers["env"], timeout=660,
    )  # fmt: skip
    assert "Completed" in out, (
        f"{out[-3000:]}\nworker:\n{servers['worker'].log.read_text()[-4000:]}"
    )
    # Then the tracking server holds the sweep's parent, its two children and the summary
    from mlflow import MlflowClient

    client = MlflowClient(servers["mlflow"])
    experiment = client.get_experiment_by_name("integration-sweep")
    (parent,) = client.search_runs([experiment.experiment_id], "tags.`grpo.run_type` = 'sweep'")
    assert parent.data.tags["grpo.runner"] == "dask (LocalCluster of 2 workers)"
    kids = client.search_runs(
        [experiment.experiment_id], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'"
    )
    assert sorted(k.data.tags["grpo.sweep_point"] for k in kids) == [
        "group_weights.robust_mix=0",
        "group_weights.robust_mix=1",
    ]
    assert all(k.info.status == "FINISHED" for k in kids)
    summary = {a.path for a in client.list_artifacts(parent.info.run_id, "sweep")}
    assert "sweep/pareto_gr_ipo.png" in summary


def evaluate_deployment(servers, model: str, data, threshold: float) -> dict:
    """Run the nightly-evaluation deployment through the worker; return its MLflow run's tags."""
    params = {
        "config": {
            "name": "integration-test", "model": model, "data": data.model_dump(mode="json"),
            "splits": ["test"], "output_dir": str(servers["root"] / "outputs"),
            "drift_metric": "loss", "drift_threshold": threshold,
        }
    }  # fmt: skip
    out = run(
        [str(BIN / "prefect"), "deployment", "run", "evaluate/nightly-evaluation", "--params",
         json.dumps(params), "--watch", "--watch-timeout", "600"],
        servers["env"], timeout=660,
    )  # fmt: skip
    assert "Completed" in out, (
        f"{out[-3000:]}\nworker:\n{servers['worker'].log.read_text()[-4000:]}"
    )
    from mlflow import MlflowClient

    client = MlflowClient(servers["mlflow"])
    experiment = client.get_experiment_by_name("integration-test")
    (latest,) = client.search_runs(
        [experiment.experiment_id],
        "tags.`grpo.run_type` = 'evaluation'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return latest.data.tags


def damaged_copy(client, run_id: str, folder) -> str:
    """The run's checkpoint with every weight scaled by -3 (finite, but a different model), sealed
    with a fresh manifest and logged beside it; returns its artifact URI."""
    from safetensors.torch import load_file, save_file

    from grpo_core.lm.checkpoint import MANIFEST, write_manifest

    checkpoint = Path(client.download_artifacts(run_id, "checkpoint", str(folder)))
    for path in checkpoint.rglob("model/*.safetensors"):
        weights = load_file(path)
        save_file({k: v * -3 if v.is_floating_point() else v for k, v in weights.items()}, path)
    assert any(checkpoint.rglob("model/*.safetensors")), f"no weights under {checkpoint}"
    for manifest in checkpoint.rglob(MANIFEST):
        write_manifest(manifest.parent)
    client.log_artifacts(run_id, str(checkpoint), "checkpoint-damaged")
    return client.get_run(run_id).info.artifact_uri + "/checkpoint-damaged"


def test_drift_alert_fires_for_a_degraded_model_and_stays_silent_for_a_healthy_one(
    servers, tmp_path
):
    from mlflow import MlflowClient

    receiver = WebhookReceiver()
    try:
        # Given the drift alert installed with one command, sending to a webhook on loopback
        out = run(
            [str(BIN / "grpo"), "alerts", "install", "--webhook-url", receiver.url], servers["env"]
        )
        assert "grpo-drift-alert" in out
        data = tiny_config(servers["root"] / "outputs", name="integration-test").data

        # When the champion is evaluated on the data it was trained on (healthy: no change)
        tags = evaluate_deployment(servers, "champion", data, threshold=1.0)
        # Then the run is marked ok and nobody is notified
        assert tags["grpo.drift_status"] == "ok" and "grpo.drift_alert" not in tags
        assert receiver.wait_for(1, timeout=20) == [], "a healthy model raised an alert"

        # When a damaged copy of the champion (same training run) is evaluated
        client = MlflowClient(servers["mlflow"])
        champion = client.get_model_version_by_alias("integration-test-policy", "champion")
        source = damaged_copy(client, champion.run_id, tmp_path)
        damaged = client.create_model_version(
            "integration-test-policy", source=source, run_id=champion.run_id
        )
        tags = evaluate_deployment(servers, damaged.version, data, threshold=1.0)
        # Then the run is marked, and the automation posts one notification naming the groups
        assert tags["grpo.drift_status"] == "alert"
        assert "worse than at training" in tags["grpo.drift_alert"]
        (notice,) = receiver.wait_for(1, timeout=90)
        assert notice["subject"] == f"GRPO drift alert: integration-test-policy-v{damaged.version}"
        assert tags["grpo.drift_alert"] in notice["body"]
    finally:
        receiver.close()
