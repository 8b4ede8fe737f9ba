"""Atomic folder and file writes, content fingerprints, and the refusal of pickled payloads.

A folder is written under a temporary sibling name and renamed into place, so a reader (or a
resumed run after SIGKILL) sees either nothing or the complete folder, never half of one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib", ".npy", ".npz")
"""File endings of formats that unpickle on load (torch.save, pickle, numpy object arrays)."""

_PICKLE_MAGIC = (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05", b"PK\x03\x04")
"""Pickle protocol 2-5 headers, and the zip header of ``torch.save``'s archive format."""


def tmp_sibling(target: Path) -> Path:
    """A unique hidden temporary name next to ``target`` (same file system, so rename is atomic)."""
    return target.parent / f".{target.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"


@contextlib.contextmanager
def atomic_directory(target: str | Path, *, replace: bool = False) -> Iterator[Path]:
    """Yield an empty temporary folder; on success rename it to ``target``.

    If ``target`` already exists: with ``replace`` it is swapped out (renamed aside, then deleted);
    without, the new folder is discarded and the existing one kept (two processes filling the same
    cache entry agree on its content). On an exception the temporary folder is removed.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_sibling(target)
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if target.exists():
        if not replace:
            shutil.rmtree(tmp, ignore_errors=True)
            return
        old = tmp_sibling(target)
        os.rename(target, old)
        os.rename(tmp, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(tmp, target)


def write_json_atomic(path: str | Path, data: Any) -> None:
    """Write ``data`` as indented JSON through a temporary file and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_sibling(path)
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def hash_json(data: Any) -> str:
    """sha256 of the canonical JSON of ``data`` (sorted keys), hex."""
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def hash_folder(folder: str | Path, suffixes: tuple[str, ...] = (".safetensors", ".json")) -> str:
    """sha256 over the names and contents of the files in ``folder`` with one of ``suffixes``.

    The model fingerprint: weights and config. Hidden temporary files are skipped.
    """
    digest = hashlib.sha256()
    folder = Path(folder)
    for path in sorted(folder.rglob("*")):
        if not path.is_file() or path.name.startswith(".") or not path.name.endswith(suffixes):
            continue
        digest.update(str(path.relative_to(folder)).encode() + b"\0")
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 22), b""):
                digest.update(chunk)
    return digest.hexdigest()


class PickleRefusedError(ValueError):
    """A folder that should hold only safetensors and JSON holds a file that would unpickle."""


def refuse_pickles(folder: str | Path) -> None:
    """Raise :class:`PickleRefusedError` if any file in ``folder`` is (or is named like) a pickle.

    Checked before anything in the folder is loaded: loading never unpickles.
    """
    folder = Path(folder)
    for path in sorted(folder.rglob("*")):
        if not path.is_file():
            continue
        if path.name.endswith(".safetensors"):
            continue  # parsed by safetensors, which reads only a JSON header and raw bytes
        with path.open("rb") as handle:
            head = handle.read(4)
        if path.name.endswith(PICKLE_SUFFIXES) or head.startswith(_PICKLE_MAGIC):
            raise PickleRefusedError(
                f"refusing to load {folder}: {path.relative_to(folder)} is a pickled payload "
                "(torch.save/pickle). Checkpoints hold only safetensors and JSON; remove the file "
                "if you trust it, or re-create the checkpoint."
            )
