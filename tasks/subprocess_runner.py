"""Run a :mod:`tasks.worker` request in a child process, streaming its events to the caller."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from tasks.worker import WorkerRequest

Event = dict[str, Any]


class WorkerFailed(RuntimeError):
    """The worker process exited non-zero, was killed, or ran past its time limit.

    ``reason`` is one line a person can act on: the worker's own error message when it reported
    one, else what happened to the process.
    """

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason


def die_with_parent() -> None:
    """In the child, before exec: get SIGKILL when the parent dies (Linux), so that a killed flow
    process does not leave an orphan holding the GPU."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)


def run_worker(
    request: WorkerRequest,
    on_event: Callable[[Event], None],
    on_text: Callable[[str], None],
    timeout_s: float | None = None,
    env: Mapping[str, str] | None = None,
) -> Event:
    """Run ``request`` in ``python -m tasks.worker``; return its ``result`` event.

    The child's stdout carries only JSON event lines (to ``on_event``); its stderr (warnings,
    tracebacks) goes line by line to ``on_text`` from a second thread, so the two never interleave.
    Past ``timeout_s`` seconds the child's whole process group is killed and :class:`WorkerFailed`
    raised, so a hung run cannot hold the flow (or the GPU) forever. ``env`` adds to (or replaces
    in) this process's environment, e.g. the GPU it may use.
    """
    with tempfile.TemporaryDirectory(prefix="grpo-worker-") as folder:
        path = Path(folder) / "request.json"
        path.write_text(request.model_dump_json())
        child_env = {**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1", "TQDM_DISABLE": "1"}
        root = str(Path(__file__).resolve().parents[1])
        child_env["PYTHONPATH"] = os.pathsep.join(
            p for p in (root, child_env.get("PYTHONPATH")) if p
        )
        process = subprocess.Popen(
            [sys.executable, "-m", "tasks.worker", str(path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=child_env,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
        tail: list[str] = []

        def read_stderr() -> None:
            for line in process.stderr:
                line = line.rstrip("\n")
                tail.append(line)
                del tail[:-40]
                on_text(line)

        reader = threading.Thread(target=read_stderr, daemon=True)
        reader.start()
        timed_out = threading.Event()

        def kill() -> None:
            timed_out.set()
            os.killpg(process.pid, signal.SIGKILL)

        timer = threading.Timer(timeout_s, kill) if timeout_s else None
        if timer:
            timer.start()
        result: Event | None = None
        error: Event | None = None
        lines: queue.Queue[str | None] = queue.Queue()

        def read_stdout() -> None:
            for line in process.stdout:
                lines.put(line)
            lines.put(None)

        threading.Thread(target=read_stdout, daemon=True).start()
        try:
            while (line := _next_line(lines)) is not None:
                event = _parse(line.rstrip("\n"))
                if event is None:
                    on_text(line.rstrip("\n"))
                elif event["event"] == "result":
                    result = event
                elif event["event"] == "error":
                    error = event
                else:
                    on_event(event)
            code = process.wait()
            reader.join(timeout=10)
        finally:
            if timer:
                timer.cancel()
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
    if timed_out.is_set():
        reason = f"killed after {timeout_s:.0f} s (execution.timeout_minutes)"
        raise WorkerFailed(f"{request.stage} worker {reason}", reason)
    if error is not None:
        raise WorkerFailed(f"{request.stage} failed: {error['message']}", error["message"])
    if code != 0 or result is None:
        last = next((line for line in reversed(tail) if line.strip()), "no output")
        raise WorkerFailed(
            f"{request.stage} worker failed (exit code {code}):\n" + "\n".join(tail),
            f"the worker process exited with code {code}: {last}",
        )
    return result


def _next_line(lines: queue.Queue[str | None]) -> str | None:
    """The worker's next stdout line (None at its end), waiting in short slices: a Ctrl-C that the
    kernel hands to another thread still interrupts this one within half a second (a blocking
    read would wait for the worker's next line, however long that takes)."""
    while True:
        try:
            return lines.get(timeout=0.5)
        except queue.Empty:
            continue


def _parse(line: str) -> Event | None:
    if not line.startswith('{"event"'):
        return None
    try:
        return json.loads(line)
    except json.JSONDecodeError:
        return None
