"""The Prefect task runner of a sweep's children, and the GPU each local child is pinned to.

Local: a thread pool as wide as the GPUs the children may use (one at a time on a CPU). Dask:
prefect-dask's ``DaskTaskRunner`` on a ``LocalCluster`` of single-threaded worker processes, or on an
existing scheduler. Either way each training claims one free GPU of its machine and its worker
process sees only that one (``CUDA_VISIBLE_DEVICES``).
"""

from __future__ import annotations

import fcntl
import logging
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tasks.sweep_config import RunnerConfig


def visible_gpus(device: str) -> list[str]:
    """The CUDA device ids this process may hand out for ``device`` (none for ``cpu`` or no GPU)."""
    if device == "cpu":
        return []
    import torch

    count = torch.cuda.device_count()
    listed = [d.strip() for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    return listed[:count] if listed else [str(i) for i in range(count)]


def task_runner(runner: RunnerConfig, device: str):
    """The task runner of a sweep's children (a new one for every sweep)."""
    if runner.kind == "dask":
        from prefect_dask import DaskTaskRunner

        quiet_dask_logs()

        if runner.dask_address:
            return DaskTaskRunner(address=runner.dask_address)
        return DaskTaskRunner(
            cluster_class="distributed.LocalCluster",
            cluster_kwargs={
                "n_workers": runner.dask_workers,
                "threads_per_worker": 1,
                "processes": True,
                "dashboard_address": None,
            },
        )
    from prefect.task_runners import ThreadPoolTaskRunner

    return ThreadPoolTaskRunner(max_workers=max(1, len(visible_gpus(device))))


def quiet_dask_logs() -> None:
    """Show Dask's warnings and errors only, in this process and the worker processes it starts:
    its INFO lines (workers started and stopped, a connection closed at shut-down with its
    traceback) are not the sweep's news. ``DASK_LOGGING__DISTRIBUTED`` set by the user wins."""
    level = os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")
    logging.getLogger("distributed").setLevel(level.upper())


class GpuPool:
    """The GPUs of this machine, each lent to one training at a time across the processes of this
    machine (a lock file per GPU: threads of the local runner and Dask workers alike); a process that
    dies gives its GPU back with its file lock."""

    def __init__(self, gpus: list[str], lock_dir: Path | None = None, poll_s: float = 1.0):
        self.gpus = list(gpus)
        self.lock_dir = lock_dir or Path(tempfile.gettempdir()) / "grpo-gpu-locks"
        self.poll_s = poll_s

    @contextmanager
    def claim(self) -> Iterator[dict[str, str]]:
        """The environment of a worker process pinned to one free GPU (``{}`` when there is none
        to hand out); waits until one is free."""
        if not self.gpus:
            yield {}
            return
        self.lock_dir.mkdir(parents=True, exist_ok=True)
        while True:
            for gpu in self.gpus:
                handle = open(self.lock_dir / f"gpu-{gpu}.lock", "a")  # noqa: SIM115 (held while used)
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    handle.close()
                    continue
                try:
                    yield {"CUDA_VISIBLE_DEVICES": gpu}
                finally:
                    fcntl.flock(handle, fcntl.LOCK_UN)
                    handle.close()
                return
            time.sleep(self.poll_s)


def gpu_pool(device: str) -> GpuPool:
    """The pool of the GPUs that ``device`` may use."""
    return GpuPool(visible_gpus(device))
