"""The project's one atomic writer: a folder or file appears complete or not at all.

Everything is written under a hidden temporary sibling (same file system) and renamed into place,
so a reader, or a run resumed after SIGKILL, never sees half of it; the name holds the writer's pid,
and the next write into the same folder removes what a dead writer left. Torch-free.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from grpo_core.lock import process_alive

_SIBLING = re.compile(r"^\.(?P<target>.+)\.(?P<kind>tmp|old)-(?P<pid>\d+)-[0-9a-f]{8}$")


def tmp_sibling(target: Path, kind: str = "tmp") -> Path:
    """A unique hidden name next to ``target``, e.g. ``.metrics.json.tmp-<pid>-<token>``."""
    return target.parent / f".{target.name}.{kind}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def clean_stale_siblings(parent: Path) -> None:
    """Remove the temporary siblings in ``parent`` whose writer (the pid in the name) is dead: a
    writer killed mid-write leaves its ``.tmp-`` behind. A dead writer's ``.old-`` (a replaced
    folder) is put back when its target is missing (it was killed between the two renames), else
    removed. Entries of live processes are never touched."""
    try:
        entries = list(parent.iterdir())
    except OSError:
        return
    for entry in entries:
        found = _SIBLING.match(entry.name)
        if found is None or process_alive(int(found["pid"])):
            continue
        target = parent / found["target"]
        with contextlib.suppress(OSError):
            if found["kind"] == "old" and not target.exists():
                os.rename(entry, target)
            elif entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()


@contextlib.contextmanager
def atomic_directory(target: str | Path, *, replace: bool = False) -> Iterator[Path]:
    """Yield an empty temporary folder; when the block succeeds, rename it to ``target``.

    If ``target`` already exists: with ``replace`` the old folder is renamed aside, the new one
    renamed in (the old one is put back if that fails) and the old one deleted; without, the new
    folder is discarded and the existing one kept (two processes filling the same cache entry agree
    on its content). On an exception the temporary folder is removed and ``target`` left as it was.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_siblings(target.parent)
    tmp = tmp_sibling(target)
    tmp.mkdir()
    try:
        yield tmp
        if not target.exists():
            os.rename(tmp, target)
        elif replace:
            old = tmp_sibling(target, "old")
            os.rename(target, old)
            try:
                os.rename(tmp, target)
            except BaseException:
                os.rename(old, target)
                raise
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # a no-op once renamed into place


@contextlib.contextmanager
def atomic_file(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write; when the block succeeds, ``os.replace`` it onto ``target``."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_siblings(target.parent)
    tmp = tmp_sibling(target)
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def write_json_atomic(path: str | Path, data: Any) -> None:
    """Write ``data`` as indented JSON (sorted keys) through :func:`atomic_file`."""
    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def finite_json(data: Any) -> Any:
    """``data`` with every NaN or infinite float replaced by None, so that it is standard JSON (an
    interval over one seed has no width: null, not NaN)."""
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {key: finite_json(value) for key, value in data.items()}
    if isinstance(data, list | tuple):
        return [finite_json(value) for value in data]
    return data


def write_result_json(path: str | Path, data: Any) -> None:
    """Write a command's result as indented, standard JSON (:func:`finite_json`, keys in their
    order; values JSON does not know as strings) through :func:`atomic_file`."""
    text = json.dumps(finite_json(data), indent=2, default=str, allow_nan=False, ensure_ascii=False)
    with atomic_file(path) as tmp:
        tmp.write_text(text + "\n")
