"""Who owns a shared file or folder: exclusive ``flock`` locks and the liveness of processes.

A lock is an ``fcntl.flock`` on an open file: the kernel releases it when its process ends, however
it ends (``kill -9`` included), so a lock can never be left held by a dead process. The holder
writes who it is (host, pid, process start time, command) into the file, for the message another
process gets, and for a note when a later process finds the details of one that died without
clearing them. Linux and other POSIX systems; torch-free, prints nothing.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

RUN_FOLDER_LOCK = ".grpo-lock"
"""The lock file of a run folder (:func:`own_folder`)."""


class FolderInUse(RuntimeError):
    """Another live process owns the folder."""


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name (state first); None if there is
    no such process (or no ``/proc``)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()


def process_start(pid: int) -> str | None:
    """When process ``pid`` started (clock ticks since boot, from ``/proc/<pid>/stat``), which
    tells a process from a later one that reuses its pid; None if there is no such process (or
    no ``/proc``)."""
    fields = _stat_fields(pid)
    return None if fields is None else fields[19]


def process_alive(pid: int, start: str | None = None) -> bool:
    """Whether process ``pid`` of this host lives (a zombie counts as dead); with ``start`` (from
    :func:`process_start`), whether that very process lives, not a later one with its pid."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        pass
    fields = _stat_fields(pid)
    if fields is None:
        return start is None  # no /proc: trust os.kill
    if fields[0] == "Z":
        return False
    return start is None or fields[19] == start


@dataclass(frozen=True)
class Holder:
    """Who holds (or held) a lock."""

    host: str
    pid: int
    start: str | None
    started_at: str
    command: str

    @classmethod
    def me(cls, command: str | None = None) -> Holder:
        pid = os.getpid()
        return cls(
            host=socket.gethostname(),
            pid=pid,
            start=process_start(pid),
            started_at=time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            command=command if command is not None else _command_line(),
        )

    @classmethod
    def read(cls, text: str) -> Holder | None:
        try:
            fields = json.loads(text)
            return cls(**{k: fields[k] for k in cls.__dataclass_fields__})
        except (ValueError, TypeError, KeyError):
            return None

    def dumps(self) -> str:
        return json.dumps(self.__dict__) + "\n"

    def dead(self) -> bool:
        """Whether this holder is known to be gone: a process of this host that no longer runs."""
        return self.host == socket.gethostname() and not process_alive(self.pid, self.start)

    def __str__(self) -> str:
        return f"pid {self.pid} on {self.host} (started {self.started_at}, command: {self.command})"


@contextlib.contextmanager
def exclusive(path: str | Path, *, wait: bool = True) -> Iterator[int]:
    """Hold an exclusive ``flock`` on ``path`` (created if missing) for the block; yield its file
    descriptor. Without ``wait``, raise :class:`BlockingIOError` at once if another holds it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        yield fd
    finally:
        os.close(fd)  # releases the lock


@contextlib.contextmanager
def own_folder(folder: str | Path, command: str | None = None) -> Iterator[str | None]:
    """Own ``folder`` (a run folder) for the block: one process at a time.

    The lock file ``folder/.grpo-lock`` names the holder while it is held and is emptied when the
    block ends. Yields None, or a note when the details of an earlier holder were still there (it
    died without clearing them: the kernel had already released its lock). Raises
    :class:`FolderInUse`, naming the holder, when a live process owns the folder.
    """
    path = Path(folder) / RUN_FOLDER_LOCK
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = Holder.read(_read(fd))
            who = str(holder) if holder is not None else "another process"
            raise FolderInUse(
                f"{folder} is in use by {who}; wait for it to end, or use another folder"
            ) from None
        earlier = Holder.read(_read(fd))
        note = None
        if earlier is not None:
            note = f"took over {folder} from {earlier}, which ended without releasing it"
        os.ftruncate(fd, 0)
        os.pwrite(fd, Holder.me(command).dumps().encode(), 0)
        try:
            yield note
        finally:
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # releases the lock


def _read(fd: int) -> str:
    size = os.fstat(fd).st_size
    return os.pread(fd, size, 0).decode(errors="replace") if size else ""


def _command_line() -> str:
    """This process's command line, its program by name only (``grpo train --output runs/a``)."""
    return " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv else ""
