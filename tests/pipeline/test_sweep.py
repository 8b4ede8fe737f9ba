"""The sweep through the real CLI: a Dask LocalCluster of 2 worker processes trains a 4-child sweep,
every child is in MLflow with its metrics and checkpoint, and the children equal the same sweep
trained one at a time; a child that fails leaves the others; a method that reads none of the swept
settings trains once."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from mlflow import MlflowClient

from grpo_core import names
from tests.reliability.test_signals import (
    as_foreground_job,
    finish,
    run_statuses,
    wait_for_training,
    wait_gone,
)

pytestmark = pytest.mark.integration
GRPO = str(Path(sys.executable).parent / "grpo")
CONFIG = """
name: sweep-test
methods: [gr_ipo]
seeds: [0, 1]
data: {format: synthetic, synthetic: {num_questions: 60}}
sft: {enabled: false}
optim: {max_steps: 4, batch_size: 8}
eval: {batch_size: 64, splits: [validation, test]}
tracking: {register_models: false}
execution: {threads: 1, timeout_minutes: 10}
"""


def sweep_environment(folder: Path, config: str = CONFIG) -> tuple[dict[str, str], str]:
    """The environment of a ``grpo sweep`` in ``folder`` (its own Prefect home, cache and MLflow
    store) and the marker every process it starts carries in its environment."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.yaml").write_text(config)
    marker = uuid.uuid4().hex
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env |= {
        "GRPO_SWEEP_TEST": marker,
        "PREFECT_HOME": str(folder / "prefect"),
        "GRPO_CACHE_DIR": str(folder / "cache"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{folder / 'mlflow.db'}",
    }
    return env, marker


def grpo_sweep(
    folder: Path, *args: str, timeout: float = 600
) -> tuple[subprocess.CompletedProcess, str]:
    """Run ``grpo sweep`` in ``folder``; returns the finished process and its processes' marker."""
    env, marker = sweep_environment(folder)
    done = subprocess.run(
        [GRPO, "sweep", "--config", "config.yaml", "--json", "result.json", *args],
        cwd=folder, env=env, capture_output=True, text=True, timeout=timeout,
        preexec_fn=as_foreground_job,
    )  # fmt: skip
    return done, marker


def children_metrics(result: dict) -> dict[tuple, dict[str, float]]:
    return {(r["method"], r["seed"], r["sweep_point"]): r["metrics"] for r in result["runs"]}


def training_curves(folder: Path, result: dict) -> dict[tuple, list[tuple[int, float]]]:
    """Each child's ``train/loss`` curve, (step, value) by step."""
    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    curves = {}
    for run in result["runs"]:
        history = client.get_metric_history(run["run_id"], names.TRAIN_LOSS)
        curves[(run["method"], run["seed"], run["sweep_point"])] = sorted(
            (m.step, m.value) for m in history
        )
    assert all(len(curve) > 1 for curve in curves.values()), curves
    return curves


def test_a_dask_sweep_logs_every_child_and_equals_the_same_sweep_run_one_at_a_time(tmp_path):
    grid = ["--grid", "group_weights.robust_mix=0,1"]
    # Given the same 4-child sweep (2 chi x 2 seeds) on a Dask LocalCluster and on the local runner
    dask, marker = grpo_sweep(tmp_path / "dask", *grid, "--runner", "dask", "--dask-workers", "2")
    assert dask.returncode == 0, dask.stderr[-4000:]
    assert "Traceback" not in dask.stderr
    assert wait_gone(marker, 30) == [], "Dask workers or training processes outlived grpo sweep"
    local, _ = grpo_sweep(tmp_path / "local", *grid)
    assert local.returncode == 0, local.stderr[-4000:]

    # Then every child is a FINISHED child run of the sweep with its metrics and checkpoint
    result = json.loads((tmp_path / "dask" / "result.json").read_text())
    assert result["runner"] == "dask (LocalCluster of 2 workers)"
    client = MlflowClient(f"sqlite:///{tmp_path / 'dask' / 'mlflow.db'}")
    parent = client.get_run(result["parent_run_id"])
    assert parent.data.tags[names.RUN_TYPE] == "sweep"
    assert parent.info.status == "FINISHED"
    kids = client.search_runs(
        [result["experiment_id"]], f"tags.`{names.PARENT_RUN}` = '{result['parent_run_id']}'"
    )
    assert len(kids) == 4
    points = sorted((k.data.tags[names.SWEEP_POINT], k.data.tags[names.SEED]) for k in kids)
    assert points == [(f"group_weights.robust_mix={chi}", seed) for chi in (0, 1) for seed in "01"]
    for kid in kids:
        assert kid.info.status == "FINISHED"
        assert kid.data.params["group_weights.robust_mix"] in ("0.0", "1.0")
        assert names.eval_key("test", "worst_group", "loss") in kid.data.metrics
        assert names.TRAIN_LOSS in kid.data.metrics
        logged = {a.path for a in client.list_artifacts(kid.info.run_id, "checkpoint")}
        assert {"checkpoint/model", "checkpoint/manifest.json"} <= logged, logged
    summary = {a.path for a in client.list_artifacts(result["parent_run_id"], "sweep")}
    assert {"sweep/pareto_gr_ipo.png", "sweep/sweep_loss.csv"} <= summary
    # And the Dask children's results equal the sequential ones bit for bit (same seeds, 1 thread)
    sequential = json.loads((tmp_path / "local" / "result.json").read_text())
    assert children_metrics(result) == children_metrics(sequential)
    assert result["summary"]["tables"] == sequential["summary"]["tables"]

    # And the same sweep run again resumes every child from its checkpoint into a new child run
    # with the same metrics and the whole training curve
    again, _ = grpo_sweep(tmp_path / "local", *grid)
    assert again.returncode == 0, again.stderr[-4000:]
    resumed = json.loads((tmp_path / "local" / "result.json").read_text())
    assert resumed["parent_run_id"] != sequential["parent_run_id"]
    assert children_metrics(resumed) == children_metrics(sequential)
    assert training_curves(tmp_path / "local", resumed) == training_curves(
        tmp_path / "local", sequential
    )


def test_a_child_that_fails_is_marked_with_its_reason_and_the_others_finish(tmp_path):
    # Given a sweep one of whose settings cannot train (a learning rate that makes the loss NaN)
    done, _ = grpo_sweep(tmp_path, "--grid", "optim.learning_rate=3e-4,1e30", "--set", "seeds=[0]")
    # Then it exits 1 naming the failed child, and the other child is in the summary
    assert done.returncode == 1, done.stderr[-4000:]
    assert "Traceback" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert "optim.learning_rate=1e+30 failed" in last and "not finite" in last, last
    result = json.loads((tmp_path / "result.json").read_text())
    assert [r["sweep_point"] for r in result["runs"]] == ["optim.learning_rate=0.0003"]
    with sqlite3.connect(tmp_path / "mlflow.db") as db:
        statuses = dict(db.execute("select name, status from runs").fetchall())
    assert sorted(statuses.values()) == ["FAILED", "FINISHED", "FINISHED"], statuses


def test_ctrl_c_during_a_dask_sweep_fails_every_run_and_leaves_no_process(tmp_path):
    # Given a Dask sweep whose two children are training (for far longer than the test waits)
    env, marker = sweep_environment(tmp_path, CONFIG.replace("max_steps: 4", "max_steps: 100000"))
    process = subprocess.Popen(
        [GRPO, "sweep", "--config", "config.yaml", "--grid", "group_weights.robust_mix=0,1",
         "--set", "seeds=[0]", "--runner", "dask"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True, preexec_fn=as_foreground_job,
    )  # fmt: skip
    wait_for_training(process, tmp_path / "mlflow.db")
    # When Ctrl-C reaches the whole process group
    os.killpg(process.pid, signal.SIGINT)
    stderr = finish(process, timeout=120)
    # Then it exits 130 in one line, the parent and both children are FAILED, nothing is left
    assert process.returncode == 130, stderr[-3000:]
    assert stderr.strip().splitlines()[-1] == "grpo sweep: interrupted"
    statuses = run_statuses(tmp_path / "mlflow.db")
    assert len(statuses) == 3 and set(statuses.values()) == {"FAILED"}, statuses
    assert wait_gone(marker, 30) == [], "Dask workers or training processes outlived grpo sweep"


def test_a_step_size_sweep_trains_ipo_once_and_reports_it_at_both_step_sizes(tmp_path):
    # Given IPO and GR-IPO over two group step sizes, which IPO never reads
    done, _ = grpo_sweep(
        tmp_path, "--grid", "group_weights.step_size=0.001,0.01",
        "--set", "methods=[ipo, gr_ipo]", "--set", "seeds=[0]",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    assert "4 children, 3 trainings" in done.stderr, done.stderr[-2000:]
    # Then three children trained, IPO only at the first step size
    result = json.loads((tmp_path / "result.json").read_text())
    trained = sorted(p.parent.name + "/" + p.name for p in tmp_path.glob("outputs/sweeps/*/*/*"))
    assert trained == [
        "group_weights.step_size-0.001/gr_ipo-seed0",
        "group_weights.step_size-0.001/ipo-seed0",
        "group_weights.step_size-0.01/gr_ipo-seed0",
    ]
    runs = {(r["method"], r["sweep_point"]): r for r in result["runs"]}
    low, high = "group_weights.step_size=0.001", "group_weights.step_size=0.01"
    assert len(runs) == 4
    assert runs["ipo", high]["shared_with"] == runs["ipo", low]["run_id"]
    assert runs["ipo", high]["metrics"] == runs["ipo", low]["metrics"]
    assert runs["ipo", high]["run_dir"] == runs["ipo", low]["run_dir"]
    assert "shared_with" not in runs["gr_ipo", high] | runs["gr_ipo", low] | runs["ipo", low]
    # And every grid point has its row, the shared one naming the setting that trained it
    rows = {(r["method"], r["setting"]): r["shares"] for r in result["summary"]["tables"]["loss"]}
    assert rows == {("ipo", low): None, ("gr_ipo", low): None, ("ipo", high): low,
                    ("gr_ipo", high): None}  # fmt: skip
    assert result["summary"]["trainings"] == 3
    # And in MLflow the shared child is a run of its own step size, tagged with the trained run,
    # without a checkpoint or a training curve of its own
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    kids = client.search_runs(
        [result["experiment_id"]], f"tags.`{names.PARENT_RUN}` = '{result['parent_run_id']}'"
    )
    assert len(kids) == 4
    shared = [k for k in kids if names.SHARED_WITH in k.data.tags]
    assert [k.info.run_id for k in shared] == [runs["ipo", high]["run_id"]]
    assert shared[0].data.tags[names.SHARED_WITH] == runs["ipo", low]["run_id"]
    assert shared[0].data.params["group_weights.step_size"] == "0.01"
    assert shared[0].info.status == "FINISHED"
    assert client.list_artifacts(shared[0].info.run_id, "checkpoint") == []
    assert len(client.get_metric_history(shared[0].info.run_id, names.TRAIN_LOSS)) == 1
