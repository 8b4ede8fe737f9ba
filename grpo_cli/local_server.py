"""A temporary Prefect server for one ``grpo run``/``grpo demo`` that a terminal's Ctrl-C cannot
kill first, and that cannot outlive the command.

Prefect's own temporary server shares the terminal's process group, so Ctrl-C stops it at the same
moment as the flow, and the hook that marks the MLflow runs FAILED finds no server to report to.
This one runs in its own session (Ctrl-C reaches only ``grpo``), is stopped when the command ends,
and is killed by the kernel if ``grpo`` itself is killed (Linux ``PR_SET_PDEATHSIG``). Used only
when ``PREFECT_API_URL`` is unset; the user's own server is never touched.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path

from grpo_core.lock import exclusive
from tasks.loopback import free_port, health_problem
from tasks.subprocess_runner import die_with_parent

STARTUP_TIMEOUT_S = 90.0


@contextmanager
def local_prefect_server(history: Path | None = None) -> Iterator[str | None]:
    """Yield the API URL of a temporary server (None, and nothing started, if PREFECT_API_URL is
    set); ``PREFECT_API_URL`` points at it meanwhile.

    Its database is its own, never the user's ``~/.prefect/prefect.db`` (two servers on one SQLite
    file corrupt each other's writes): ``history/prefect.db``, kept for the next run, while no
    other run holds it (a lock beside it), else a database in a temporary folder, removed at the
    end. ``PREFECT_API_DATABASE_CONNECTION_URL``, when set, is used instead."""
    if os.environ.get("PREFECT_API_URL"):
        yield None
        return
    with ExitStack() as stack:
        env = dict(os.environ)
        if not env.get("PREFECT_API_DATABASE_CONNECTION_URL"):
            folder = _database_folder(history, stack)
            env["PREFECT_API_DATABASE_CONNECTION_URL"] = (
                f"sqlite+aiosqlite:///{folder / 'prefect.db'}"
            )
        with _server(env) as api:
            yield api


def _database_folder(history: Path | None, stack: ExitStack) -> Path:
    """``history`` if this process can hold its lock for the server's life, else a temporary
    folder (removed when ``stack`` closes)."""
    if history is not None:
        with suppress(BlockingIOError, OSError):
            stack.enter_context(exclusive(history / "prefect.db.lock", wait=False))
            return history.resolve()
    return Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="grpo-prefect-")))


@contextmanager
def _server(env: dict[str, str]) -> Iterator[str]:
    spec = importlib.util.find_spec("prefect")  # not imported: its settings read the URL below
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    site = str(Path(spec.origin).resolve().parents[1])
    with tempfile.TemporaryFile("w+") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--app-dir", site, "--factory",
             "prefect.server.api.server:create_app", "--host", "127.0.0.1", "--port", str(port),
             "--log-level", "error", "--lifespan", "on"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            preexec_fn=die_with_parent, env=env,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + STARTUP_TIMEOUT_S
            while health_problem(f"{api}/health", timeout_s=2) is not None:
                if process.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    tail = " ".join(log.read().split()[-40:])
                    raise RuntimeError(f"the temporary Prefect server did not start: {tail}")
                time.sleep(0.3)
            os.environ["PREFECT_API_URL"] = api
            try:
                yield api
            finally:
                _drain_prefect_clients()
                os.environ.pop("PREFECT_API_URL", None)
        finally:
            _stop(process)


def _drain_prefect_clients() -> None:
    """Send the logs and events Prefect still holds while the server is up (else they fail later,
    noisily, at exit)."""
    if "prefect" not in sys.modules:
        return
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for worker in (APILogWorker, EventsWorker):
        worker.drain_all(timeout=5)


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
