"""Output paths are checked before any work starts, so that a bad one costs nothing: each can be
written, and none is (or, for a folder that is replaced whole, holds) one of the command's inputs."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

Inputs = Mapping[str, "str | Path | None"]
"""A command's input paths by the option (or argument) that gave them; None: not given."""


def _existing_ancestor(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path.cwd()


def writable_file(path: Path | None, option: str, inputs: Inputs | None = None) -> None:
    """Raise ``ValueError`` naming ``option`` unless ``path`` (if given) can be written as a file
    (an existing file is replaced) and is none of ``inputs`` (resolved, or the same file by another
    name) nor inside an input folder."""
    if path is None:
        return
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{option} {path}: is a folder; give the path of a file")
    _writable(_existing_ancestor(path.parent), path, option)
    _not_an_input(path, option, inputs or {}, folder=False)


def writable_folder(path: Path | None, option: str, inputs: Inputs | None = None) -> None:
    """Raise ``ValueError`` naming ``option`` unless ``path`` (if given) is or can become a folder
    that holds none of ``inputs`` (it may be replaced whole)."""
    if path is None:
        return
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{option} {path}: is a file; give the path of a folder")
    _writable(_existing_ancestor(path), path, option)
    _not_an_input(path, option, inputs or {}, folder=True)


def writable_cache(path: Path | None) -> Path:
    """The cache folder in force (``path``, else ``$GRPO_CACHE_DIR`` or ``~/.cache/grpo-pipeline``),
    after checking that it and the folders already in it (``data``, ``models``, ...) can be written:
    a cache that is read only in part fails midway otherwise. Raises ``ValueError`` naming the
    folder and ``--cache-dir``."""
    if path is None:
        from grpo_core.lm.presets import default_cache_dir  # imports torch: only when it is needed

        path, option = (
            default_cache_dir(),
            "--cache-dir (not given: $GRPO_CACHE_DIR or ~/.cache/grpo-pipeline)",
        )
    else:
        option = "--cache-dir"
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{option} {path}: is a file; give the path of a folder")
    folders = [_existing_ancestor(path)]
    if path.is_dir():
        folders += sorted(p for p in path.iterdir() if p.is_dir())
    for folder in folders:
        if not folder.is_dir():
            raise ValueError(f"{option} {path}: {folder} is a file, not a folder")
        if not os.access(folder, os.W_OK | os.X_OK):
            raise ValueError(
                f"{option} {path}: {folder} is not writable (the cache stores prepared data, "
                "models and reference log-probs there); make it writable or give --cache-dir a "
                "folder you can write"
            )
    return path


def _writable(ancestor: Path, path: Path, option: str) -> None:
    """The nearest existing folder on ``path``'s way, ``ancestor``, is a folder we may write in."""
    if not ancestor.is_dir():
        raise ValueError(f"{option} {path}: {ancestor} is a file, not a folder")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise ValueError(f"{option} {path}: {ancestor} is not writable")


def _not_an_input(output: Path, option: str, inputs: Inputs, *, folder: bool) -> None:
    """Refuse an output that is one of the inputs or inside an input folder, or (``folder``: it
    may be replaced whole) that holds one."""
    target = output.resolve()
    for given, value in inputs.items():
        if value is None or str(value) == "":
            continue
        source = Path(value)
        resolved = source.resolve()
        same = resolved == target or _same_file(source, output)
        inside = resolved.is_dir() and target.is_relative_to(resolved)
        if same or inside or (folder and resolved.is_relative_to(target)):
            where = "is" if same else "is inside" if inside else "holds"
            raise ValueError(
                f"{option} {output}: {where} the input {given} {value}, which writing it would "
                f"replace; give {option} another path"
            )


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them is not there (yet)
        return False
