"""The project's one hasher: content fingerprints (sha256) and stable short ids.

Fingerprints key every cache (prepared data, SFT models, reference log-probs) and guard resumes;
they change exactly when the content does. Torch-free.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

_SEPARATOR = "\x1f"
_BLOCK = 1 << 22


def hash_json(data: Any) -> str:
    """sha256 of the canonical JSON of ``data`` (sorted keys, ``str`` for other objects), hex."""
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def hash_file(path: str | Path) -> str:
    """sha256 of a file's bytes, hex."""
    digest = hashlib.sha256()
    _update_with_file(digest, Path(path))
    return digest.hexdigest()


def hash_files(root: str | Path, paths: Iterable[Path]) -> str:
    """sha256 over the relative names and contents of ``paths`` (files under ``root``), in sorted order."""
    root = Path(root)
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        _update_with_file(digest, path)
    return digest.hexdigest()


def hash_folder(
    folder: str | Path, suffixes: tuple[str, ...] | None = None, *, hidden: bool = False
) -> str:
    """sha256 over the names and contents of the files in ``folder`` (recursively) whose names end
    with one of ``suffixes`` (all files when None). Hidden files (temporary writes) are skipped
    unless ``hidden``."""
    folder = Path(folder)
    files = [
        path
        for path in folder.rglob("*")
        if path.is_file()
        and (hidden or not path.name.startswith("."))
        and (suffixes is None or path.name.endswith(suffixes))
    ]
    return hash_files(folder, files)


def copy_and_hash(source: str | Path, target: str | Path) -> str:
    """Copy the bytes of ``source`` to a new file ``target`` in one read; return their sha256, hex.

    What the copy holds is what was hashed, even if ``source`` is replaced or deleted meanwhile.
    """
    digest = hashlib.sha256()
    with Path(source).open("rb") as reader, Path(target).open("xb") as writer:
        for block in iter(lambda: reader.read(_BLOCK), b""):
            digest.update(block)
            writer.write(block)
    return digest.hexdigest()


def stable_digest(*parts: str, algorithm: str = "sha1") -> str:
    """Hex digest of the parts joined by a unit separator: a content id, stable across runs and
    platforms (sha1 by default: the ids of prepared pairs and questions are sha1-based)."""
    return hashlib.new(algorithm, _SEPARATOR.join(parts).encode("utf-8")).hexdigest()


def _update_with_file(digest, path: Path) -> None:
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(_BLOCK), b""):
            digest.update(block)
