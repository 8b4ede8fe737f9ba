"""Output paths are checked before any work starts, so that a bad one costs nothing."""

from __future__ import annotations

import os
from pathlib import Path


def _existing_ancestor(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path.cwd()


def writable_file(path: Path | None, option: str) -> None:
    """Raise ``ValueError`` naming ``option`` unless ``path`` (if given) can be written as a file
    (an existing file is replaced)."""
    if path is None:
        return
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{option} {path}: is a folder; give the path of a file")
    _writable(_existing_ancestor(path.parent), path, option)


def writable_folder(path: Path | None, option: str) -> None:
    """Raise ``ValueError`` naming ``option`` unless ``path`` (if given) is or can become a folder."""
    if path is None:
        return
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{option} {path}: is a file; give the path of a folder")
    _writable(_existing_ancestor(path), path, option)


def _writable(ancestor: Path, path: Path, option: str) -> None:
    """The nearest existing folder on ``path``'s way, ``ancestor``, is a folder we may write in."""
    if not ancestor.is_dir():
        raise ValueError(f"{option} {path}: {ancestor} is a file, not a folder")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise ValueError(f"{option} {path}: {ancestor} is not writable")
