"""Shared state under concurrency and crashes, with real processes: two ``grpo run`` on a new
MLflow store both finish, a run folder has one owner at a time, a run whose process died is marked
by the next run, and what a killed writer left is cleaned by the next write."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from grpo_cli.local_server import _database_folder
from grpo_cli.main import EXIT_FAILED, main
from grpo_core.atomic import write_json_atomic
from grpo_core.lock import RUN_FOLDER_LOCK, FolderInUse, exclusive, own_folder
from tests.pipeline.conftest import REPO_ROOT
from tests.reliability.helpers import tiny_config

GRPO = str(Path(sys.executable).parent / "grpo")


def dead_pid() -> int:
    """The pid of a process that has ended."""
    process = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(process.stdout)


def env_for(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    return env | {
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "GRPO_CACHE_DIR": str(tmp_path / "cache"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
        "PYTHONPATH": str(REPO_ROOT),
    }


def statuses(db: Path) -> dict[str, str]:
    with sqlite3.connect(db) as connection:
        return dict(connection.execute("select run_uuid, status from runs").fetchall())


# The run folder -----------------------------------------------------------------------------------

HOLD = """
import sys, time
from grpo_core.lock import own_folder
with own_folder(sys.argv[1], command="grpo train --output held"):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def test_a_folder_held_by_a_live_process_is_refused_naming_it(tmp_path):
    # Given a live process that owns the folder
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(tmp_path), "60"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO_ROOT,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        # When another one asks for it
        with pytest.raises(FolderInUse) as refused, own_folder(tmp_path):
            pytest.fail("a second owner got the folder")
        # Then it is refused with the holder named
        assert f"is in use by pid {holder.pid} on " in str(refused.value)
        assert "command: grpo train --output held" in str(refused.value)
    finally:
        holder.kill()
        holder.wait()


def test_the_lock_of_a_killed_holder_is_taken_over_with_a_note(tmp_path):
    # Given the details of a holder killed with SIGKILL (the kernel released its lock)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(tmp_path), "60"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO_ROOT,
    )
    assert holder.stdout.readline().strip() == "held"
    holder.kill()
    holder.wait()
    assert json.loads((tmp_path / RUN_FOLDER_LOCK).read_text())["pid"] == holder.pid
    # When another process asks for the folder
    with own_folder(tmp_path, command="grpo train --resume") as note:
        # Then it gets it, with a note naming the dead holder, and its own details are written
        assert note is not None and f"from pid {holder.pid} on " in note, note
        assert json.loads((tmp_path / RUN_FOLDER_LOCK).read_text())["pid"] == os.getpid()
    assert (tmp_path / RUN_FOLDER_LOCK).read_text() == "", "the lock is cleared on release"


def test_a_second_grpo_train_into_a_folder_in_training_is_refused(tmp_path, monkeypatch, capsys):
    # Given grpo train training into a folder
    config = tmp_path / "long.yaml"
    config.write_text(
        tiny_config("concurrency-test", steps=100000, checkpoint_every=1, splits=("validation",))
    )
    output = tmp_path / "run"
    first = subprocess.Popen(
        [GRPO, "train", "--config", str(config), "--output", str(output), "--no-progress"],
        env=env_for(tmp_path), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 240
        while not (output / "checkpoints").exists():
            assert first.poll() is None, first.communicate()[1][-3000:]
            assert time.monotonic() < deadline, "the first training did not start"
            time.sleep(0.5)
        # When a second (short) grpo train asks for the same folder
        monkeypatch.setenv("GRPO_CACHE_DIR", str(tmp_path / "cache"))
        short = tmp_path / "short.yaml"
        short.write_text(
            tiny_config("concurrency-test", steps=2, checkpoint_every=1, splits=("validation",))
        )
        code = main(["train", "--config", str(short), "--output", str(output), "--no-progress"])
        err = capsys.readouterr().err.strip().splitlines()
        # Then it is refused in one line that names the first one, and the first trains on
        assert code == EXIT_FAILED, err
        assert len(err) == 1 and f"is in use by pid {first.pid} on " in err[0], err
        assert err[0].startswith("grpo train: "), err
        assert first.poll() is None, "the first training stopped"
    finally:
        first.kill()
        first.wait()


# Temporary files ----------------------------------------------------------------------------------


def test_the_next_atomic_write_removes_what_a_dead_writer_left_and_keeps_live_ones(tmp_path):
    # Given temporary siblings of a dead writer (a folder and a file), one of this live process,
    # and a replaced folder a dead writer had renamed aside before it could rename the new one in
    dead = dead_pid()
    stale_dir = tmp_path / f".train.tmp-{dead}-0123abcd"
    (stale_dir / "inner").mkdir(parents=True)
    stale_file = tmp_path / f".groups.json.tmp-{dead}-89abcdef"
    stale_file.write_text("{")
    live = tmp_path / f".other.tmp-{os.getpid()}-00000000"
    live.mkdir()
    aside = tmp_path / f".test.old-{dead}-11111111"
    aside.mkdir()
    (aside / "kept.txt").write_text("previous version")
    # When the next atomic write goes into the same folder
    write_json_atomic(tmp_path / "metrics.json", {"a": 1})
    # Then the dead writer's temporaries are gone, the live one is kept, the folder put back
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted([live.name, "metrics.json", "test"]), left
    assert (tmp_path / "test" / "kept.txt").read_text() == "previous version"


# The temporary Prefect server's database -----------------------------------------------------------


def test_the_temporary_prefect_server_keeps_its_own_database(tmp_path):
    from contextlib import ExitStack

    history = tmp_path / "outputs" / "prefect"
    with ExitStack() as first:
        # Given a run whose server keeps its history in the output folder
        assert _database_folder(history, first) == history.resolve()
        # When a second run starts meanwhile
        with ExitStack() as second:
            other = _database_folder(history, second)
            # Then it gets a database of its own in a temporary folder, removed at its end
            assert other != history.resolve() and other.is_dir()
        assert not other.exists()
    with ExitStack() as later:  # the history is free again once the first run ends
        assert _database_folder(history, later) == history.resolve()


# MLflow -------------------------------------------------------------------------------------------


def test_runs_of_a_dead_process_are_marked_killed_and_live_ones_kept(tmp_path):
    from tasks import tracking

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracking.prepare_store(uri)
    client = tracking.client(uri)
    experiment = tracking.experiment_id(client, "killed")
    # Given a parent run and its child left RUNNING by a process that has ended, and a run of
    # this live process
    gone = {tracking.HOST: tracking.process_tags()[tracking.HOST], tracking.PID: str(dead_pid())}
    parent = client.create_run(experiment, tags=gone).info.run_id
    child = client.create_run(experiment, tags={"mlflow.parentRunId": parent}).info.run_id
    alive = client.create_run(experiment, tags=tracking.process_tags()).info.run_id
    # When the next run looks
    marked = tracking.end_runs_of_dead_processes("killed", uri)
    # Then the dead process's runs are KILLED with a note, the live one is still RUNNING
    assert sorted(marked) == sorted([parent, child])
    assert client.get_run(parent).info.status == "KILLED"
    assert client.get_run(child).info.status == "KILLED"
    assert "ended while it ran" in client.get_run(parent).data.tags[tracking.CLEANUP_NOTE]
    assert client.get_run(alive).info.status == "RUNNING"


@pytest.mark.integration
def test_two_grpo_runs_on_a_new_store_both_finish_and_a_killed_run_is_marked(tmp_path):
    from tasks import tracking

    # Given a new MLflow store and a tiny config
    (tmp_path / "tiny.yaml").write_text(
        tiny_config("concurrency-test", steps=2, checkpoint_every=1, splits=("validation",))
    )
    env = env_for(tmp_path)
    db = tmp_path / "mlflow.db"
    # When two grpo run start at the same moment
    runs = [
        subprocess.Popen(
            [GRPO, "run", "--config", "tiny.yaml", "--set", f"execution.output_dir=out{i}"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for i in range(2)
    ]
    errors = [run.communicate(timeout=600)[1] for run in runs]
    # Then both finish, every run FINISHED
    assert [run.returncode for run in runs] == [0, 0], [e[-2000:] for e in errors]
    assert set(statuses(db).values()) == {"FINISHED"}, statuses(db)
    # And a parent run then left RUNNING by a killed grpo run is marked by the next grpo run
    with sqlite3.connect(db) as connection:
        parent = connection.execute("select run_uuid from runs limit 1").fetchone()[0]
        pid = connection.execute(
            "select value from tags where run_uuid = ? and key = ?", (parent, tracking.PID)
        ).fetchone()
        assert pid is not None, "the run does not name its process"
        connection.execute("update runs set status = 'RUNNING' where run_uuid = ?", (parent,))
    again = subprocess.run(
        [GRPO, "run", "--config", "tiny.yaml", "--set", "execution.output_dir=out0"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr[-2000:]
    assert f"grpo run: note: marked MLflow run {parent} KILLED" in again.stderr
    assert statuses(db)[parent] == "KILLED"


def test_an_exclusive_lock_is_refused_while_held_and_free_after(tmp_path):
    path = tmp_path / "store.lock"
    with exclusive(path), pytest.raises(BlockingIOError), exclusive(path, wait=False):
        pass
    with exclusive(path, wait=False):
        pass


# Prefect's console and signals ----------------------------------------------------------------------

PREFECT_LOGS_AN_ERROR = """
import logging
import prefect.main  # sets up its logging, as importing a flow does
from prefect.logging import get_logger
from grpo_cli.pipeline_cmd import quiet_prefect_tracebacks
quiet_prefect_tracebacks()
try:
    raise ValueError("task failed on purpose")
except ValueError:
    get_logger("prefect.engine").error("Task run failed with exception", exc_info=True)
"""


@pytest.mark.parametrize("debug", [False, True])
def test_prefect_tracebacks_reach_the_console_only_with_grpo_debug(debug):
    env = {k: v for k, v in os.environ.items() if k != "GRPO_DEBUG"}
    env |= {"PYTHONPATH": str(REPO_ROOT)} | ({"GRPO_DEBUG": "1"} if debug else {})
    done = subprocess.run(
        [sys.executable, "-c", PREFECT_LOGS_AN_ERROR], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "Task run failed with exception" in done.stderr, done.stderr
    assert ("Traceback" in done.stderr) is debug, done.stderr


def test_sigterm_ends_a_command_with_one_line_of_its_own(capsys):
    import argparse

    import grpo_cli.main as cli
    from grpo_cli.pipeline_cmd import sigterm_raises

    def handler(args):
        with sigterm_raises():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
        return 0

    args = argparse.Namespace(func=handler, command="run", prog="grpo run")

    class Parser:
        def parse_args(self, argv):
            return args

    original = cli.build_parser
    cli.build_parser = Parser
    try:
        code = cli.main([])
    finally:
        cli.build_parser = original
    assert code == 128 + signal.SIGTERM
    assert capsys.readouterr().err.splitlines() == [
        "grpo run: terminated (SIGTERM); the flow's MLflow runs are marked FAILED"
    ]
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


OPEN_STORE = """
import os, sys, time
from pathlib import Path
from tasks import tracking
Path(sys.argv[2], f"ready-{os.getpid()}").touch()
while not Path(sys.argv[2], "go").exists():  # start together, once every one is imported
    time.sleep(0.005)
tracking.prepare_store(sys.argv[1])
tracking.client(sys.argv[1]).search_runs(["0"])
"""


def test_processes_opening_a_new_store_at_once_all_succeed(tmp_path):
    # Given a SQLite store that does not exist yet
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    openers = [
        subprocess.Popen(
            [sys.executable, "-c", OPEN_STORE, uri, str(tmp_path)],
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for _ in range(4)
    ]
    deadline = time.monotonic() + 120
    while len(list(tmp_path.glob("ready-*"))) < 4 and time.monotonic() < deadline:
        time.sleep(0.1)
    # When four processes open it at the same moment
    (tmp_path / "go").touch()
    errors = [opener.communicate(timeout=120)[1] for opener in openers]
    # Then every one of them succeeds (the store is created once, under the lock)
    assert [opener.returncode for opener in openers] == [0] * 4, [e[-1500:] for e in errors]
