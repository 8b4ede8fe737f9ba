"""The prepared-data folder: atomic writing, and the loaders the training code uses.

Layout: ``train.parquet``, ``validation.parquet``, ``test.parquet`` (string columns
``pair_id, question_id, group, prompt, chosen, rejected``), ``groups.json`` (group names in
group-id order, slugs, counts), ``summary.json`` and ``quarantine.jsonl`` (one rejected record per
line, empty when none). The folder is written to a temporary sibling and renamed into place, so a
failed run leaves nothing behind; an existing folder is replaced only when it is empty or holds a
previous prepared dataset.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grpo_core.atomic import atomic_directory
from grpo_core.data.schema import PAIR_COLUMNS, SPLITS, PreferencePair

GROUPS_FILE = "groups.json"
SUMMARY_FILE = "summary.json"
QUARANTINE_FILE = "quarantine.jsonl"
SPLIT_FILES = {split: f"{split}.parquet" for split in SPLITS}
PREPARED_FILES = frozenset({GROUPS_FILE, SUMMARY_FILE, QUARANTINE_FILE, *SPLIT_FILES.values()})


@dataclass(frozen=True)
class GroupTable:
    """The groups of a prepared dataset; a group's id is its index in ``names``."""

    names: tuple[str, ...]
    slugs: dict[str, str]
    """``{slug: name}``."""
    counts: dict[str, dict[str, int]]
    """``{name: {split: pairs}}``."""
    imbalance_ratio: float

    @property
    def num_groups(self) -> int:
        return len(self.names)

    @property
    def slug_list(self) -> tuple[str, ...]:
        """Slugs in group-id order (for metric keys)."""
        slug_of = {name: slug for slug, name in self.slugs.items()}
        return tuple(slug_of[name] for name in self.names)

    def group_id(self, name: str) -> int:
        return self.names.index(name)


def check_replaceable(out_dir: Path) -> None:
    """Raise unless ``out_dir`` is absent, empty, or a previous prepared dataset."""
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise FileExistsError(f"{out_dir}: exists and is not a folder")
    entries = {entry.name for entry in out_dir.iterdir()}
    if entries and (GROUPS_FILE not in entries or not entries <= PREPARED_FILES):
        raise FileExistsError(
            f"{out_dir}: folder is not empty and is not a prepared dataset; refusing to replace it"
        )


def write_atomically(out_dir: Path, write: Callable[[Path], None]) -> None:
    """Run ``write(folder)`` on a temporary sibling folder, then rename it to ``out_dir``.

    ``out_dir`` must be absent, empty or a previous prepared dataset (:func:`check_replaceable`);
    on any error it is left as it was.
    """
    check_replaceable(Path(out_dir))
    with atomic_directory(out_dir, replace=True) as folder:
        write(folder)


def write_pairs_table(path: Path, pairs: Iterable[PreferencePair]) -> None:
    """Write pairs as a parquet file with the string columns of :data:`PAIR_COLUMNS`."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [pair.as_row() for pair in pairs]
    table = pa.table(
        {name: pa.array([row[name] for row in rows], type=pa.string()) for name in PAIR_COLUMNS}
    )
    pq.write_table(table, path)


def write_json(path: Path, document: Any) -> None:
    path.write_text(
        json.dumps(jsonable(document), indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )


def write_jsonl(path: Path, documents: Iterable[Any]) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for document in documents:
            handle.write(json.dumps(jsonable(document), ensure_ascii=False) + "\n")


def jsonable(value: Any) -> Any:
    """``value`` with non-finite floats as strings and unknown objects as ``str`` (strict JSON)."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return str(value)


def load_groups(directory: str | Path) -> GroupTable:
    """The groups of a prepared dataset (``groups.json``)."""
    document = json.loads((Path(directory) / GROUPS_FILE).read_text(encoding="utf-8"))
    return GroupTable(
        names=tuple(document["groups"]),
        slugs=dict(document["slugs"]),
        counts={name: dict(c) for name, c in document["counts"].items()},
        imbalance_ratio=float(document["imbalance_ratio"]),
    )


def load_summary(directory: str | Path) -> dict[str, Any]:
    """The summary of a prepared dataset (``summary.json``: source, groups with their counts, ...)."""
    return json.loads((Path(directory) / SUMMARY_FILE).read_text(encoding="utf-8"))


def load_split(directory: str | Path, split: str) -> Any:
    """One split of a prepared dataset as a pandas DataFrame.

    Returns:
        The columns of :data:`PAIR_COLUMNS` plus ``group_id`` (int64, the index of the group in
        ``groups.json``), in file order.
    """
    import pandas as pd
    import pyarrow.parquet as pq

    if split not in SPLIT_FILES:
        raise ValueError(f"unknown split {split!r}; expected one of {list(SPLITS)}")
    directory = Path(directory)
    groups = load_groups(directory)
    frame = pq.read_table(directory / SPLIT_FILES[split]).to_pandas()
    missing = [c for c in PAIR_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"{directory / SPLIT_FILES[split]}: missing columns {missing}")
    ids = {name: i for i, name in enumerate(groups.names)}
    unknown = sorted(set(frame["group"]) - set(ids))
    if unknown:
        raise ValueError(f"{directory / SPLIT_FILES[split]}: groups {unknown} not in {GROUPS_FILE}")
    frame = frame[list(PAIR_COLUMNS)].copy()
    frame["group_id"] = pd.Series(
        [ids[g] for g in frame["group"]], index=frame.index, dtype="int64"
    )
    return frame
