"""Signals with real processes: Ctrl-C or a kill of ``grpo run`` leaves no run RUNNING and no
process behind, and a killed ``grpo dashboard`` no Streamlit server. Each test starts the
real CLI and its children, and finds every process it left by a marker in their environment."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.pipeline.conftest import REPO_ROOT

pytestmark = pytest.mark.integration
GRPO = str(Path(sys.executable).parent / "grpo")
CONFIG = """
name: signal-test
methods: [ipo]
seeds: [0]
data: {format: synthetic, synthetic: {num_questions: 60}}
sft: {enabled: false}
optim: {max_steps: 100000, batch_size: 8}
eval: {splits: [validation, test]}
"""


def processes_with(marker: str) -> list[int]:
    """Pids of the live processes whose environment holds ``marker`` (all our descendants)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if marker.encode() in (entry / "environ").read_bytes():
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
                if state != "Z":
                    found.append(int(entry.name))
        except OSError:
            continue
    return found


def run_statuses(db: Path) -> dict[str, str]:
    if not db.exists():
        return {}
    with sqlite3.connect(db) as connection:
        try:
            return dict(connection.execute("select name, status from runs").fetchall())
        except sqlite3.OperationalError:
            return {}


def training_started(db: Path) -> bool:
    if not db.exists():
        return False
    with sqlite3.connect(db) as connection:
        try:
            return bool(
                connection.execute(
                    "select 1 from metrics where key = 'train/loss' limit 1"
                ).fetchall()
            )
        except sqlite3.OperationalError:
            return False


def start_run(tmp_path: Path) -> tuple[subprocess.Popen, str, Path]:
    marker = f"GRPO_SIGNAL_TEST={uuid.uuid4().hex}"
    (tmp_path / "config.yaml").write_text(CONFIG)
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env |= {
        marker.split("=")[0]: marker.split("=")[1],
        "PREFECT_HOME": str(tmp_path / "prefect"),
        "GRPO_CACHE_DIR": str(tmp_path / "cache"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
        "PYTHONPATH": str(REPO_ROOT),
    }
    process = subprocess.Popen(
        [GRPO, "run", "--config", "config.yaml"], cwd=tmp_path, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        preexec_fn=as_foreground_job,
    )  # fmt: skip
    wait_for_training(process, tmp_path / "mlflow.db")
    return process, marker, tmp_path / "mlflow.db"


def wait_for_training(process: subprocess.Popen, db: Path, timeout: float = 300) -> None:
    """Until the first training step is in the MLflow store (fail if ``process`` ends first)."""
    deadline = time.monotonic() + timeout
    while not training_started(db):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, f"training did not start within {timeout:.0f} s"
        time.sleep(1)


def finish(process: subprocess.Popen, timeout: float) -> str:
    """The stderr of ``process`` once it exits; past ``timeout``, fail with every thread's stack
    (``grpo`` prints them on SIGUSR1) and kill its group."""
    try:
        return process.communicate(timeout=timeout)[1]
    except subprocess.TimeoutExpired:
        os.kill(process.pid, signal.SIGUSR1)
        time.sleep(3)
        os.killpg(process.pid, signal.SIGKILL)
        stderr = process.communicate()[1]
        pytest.fail(
            f"grpo did not exit {timeout:.0f} s after the signal; its threads:\n{stderr[-12000:]}"
        )


def as_foreground_job() -> None:
    """In the child: Ctrl-C acts as in a terminal's foreground job. A shell starts background jobs
    (``cmd &``, CI scripts) with SIGINT ignored, the child would inherit that, and Python keeps an
    inherited SIG_IGN, as it should."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def wait_gone(marker: str, timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    while (left := processes_with(marker)) and time.monotonic() < deadline:
        time.sleep(0.5)
    return left


def test_ctrl_c_in_a_terminal_fails_every_run_and_leaves_no_process(tmp_path):
    # Given grpo run training in its own process group, as a terminal's foreground job
    process, marker, db = start_run(tmp_path)
    # When Ctrl-C reaches the whole group (what a terminal sends)
    os.killpg(process.pid, signal.SIGINT)
    start = time.monotonic()
    stderr = finish(process, timeout=120)
    took = time.monotonic() - start
    # Then it exits 130 with one line, every MLflow run ended, no process left
    assert process.returncode == 130, stderr[-2000:]
    assert "Traceback" not in stderr, stderr[-3000:]
    assert stderr.strip().splitlines()[-1] == "grpo run: interrupted", stderr[-2000:]
    statuses = run_statuses(db)
    assert statuses and set(statuses.values()) <= {"FAILED", "KILLED"}, (statuses, f"{took:.0f} s")
    assert wait_gone(marker, 30) == [], "processes outlived grpo run"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_a_killed_grpo_run_leaves_no_process_behind(tmp_path, sig):
    # Given grpo run training
    process, marker, db = start_run(tmp_path)
    # When only the grpo process is killed
    os.kill(process.pid, sig)
    process.communicate(timeout=120)
    # Then its temporary Prefect server and its training worker go with it
    assert wait_gone(marker, 30) == [], "processes outlived grpo run"
    if sig == signal.SIGTERM:  # a catchable signal also ends the MLflow runs
        assert set(run_statuses(db).values()) <= {"FAILED", "KILLED"}


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_a_killed_grpo_dashboard_takes_its_streamlit_server_with_it(tmp_path, sig):
    from tests.pipeline.servers import free_port

    # Given a running ``grpo dashboard`` whose Streamlit server answers on its port
    marker = f"GRPO_SIGNAL_TEST={uuid.uuid4().hex}"
    port = free_port()
    env = {**os.environ, marker.split("=")[0]: marker.split("=")[1]}
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    dashboard = subprocess.Popen(
        [GRPO, "dashboard", "--tracking-uri", uri, "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while dashboard_answers(port) is False and time.monotonic() < deadline:
            assert dashboard.poll() is None, "grpo dashboard exited before serving"
            time.sleep(0.5)
        assert len(processes_with(marker)) >= 2, "no Streamlit child started"
        # When grpo dashboard alone is killed
        dashboard.send_signal(sig)
        dashboard.wait(timeout=30)
        # Then its Streamlit server is gone too
        assert wait_gone(marker, timeout=30) == []
    finally:
        for pid in processes_with(marker):
            os.kill(pid, signal.SIGKILL)


def dashboard_answers(port: int) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2):
            return True
    except OSError:
        return False


EVENT_LOOP_SCRIPT = """
import asyncio, os, signal
from grpo_cli.main import interrupts_raise

async def absorbs_cancellation():  # as library code may, between two awaits
    try:
        os.kill(os.getpid(), signal.SIGINT)
        await asyncio.sleep(5)
    except asyncio.CancelledError:
        return "absorbed"
    return "slept"

print("python's handler:", asyncio.run(absorbs_cancellation()))
try:
    with interrupts_raise():
        print("grpo's handler:", asyncio.run(absorbs_cancellation()))
except KeyboardInterrupt:
    print("grpo's handler: interrupted")
print("restored:", signal.getsignal(signal.SIGINT) is signal.default_int_handler)
"""


def test_a_ctrl_c_inside_an_event_loop_of_the_main_thread_is_not_lost():
    # (in a fresh interpreter: the main thread of this one may hold another test's event loop)
    result = subprocess.run(
        [sys.executable, "-c", EVENT_LOOP_SCRIPT], capture_output=True, text=True, timeout=60,
        cwd=REPO_ROOT, preexec_fn=as_foreground_job,
    )  # fmt: skip
    assert result.stdout.splitlines() == [
        "python's handler: absorbed",  # asyncio turns Ctrl-C into a cancellation, and it is lost
        "grpo's handler: interrupted",  # grpo's handler raises where the main thread is
        "restored: True",
    ], result.stderr[-2000:]


def test_a_ctrl_c_handed_to_another_thread_still_stops_the_wait_for_a_silent_worker():
    import queue
    import threading

    from tasks.subprocess_runner import _next_line

    # Given a worker that says nothing, and a Ctrl-C that the kernel hands to another thread
    lines: queue.Queue = queue.Queue()
    bystander = threading.Thread(target=time.sleep, args=(5,), daemon=True)
    bystander.start()
    threading.Timer(0.2, signal.pthread_kill, (bystander.ident, signal.SIGINT)).start()
    late = threading.Event()  # were the wait blocking, only the worker's next line would end it
    threading.Timer(20, lambda: (late.set(), lines.put("next line\n"))).start()
    # When the runner waits for the worker's next line (Ctrl-C raising, as in a foreground job)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            _next_line(lines)
    finally:
        signal.signal(signal.SIGINT, previous)
    # Then the interrupt ends the wait, before any line arrives
    assert not late.is_set()
