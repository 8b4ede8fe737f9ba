"""The prepared-data folder: atomic writing, and the loaders the training code uses.

Layout: ``train.parquet``, ``validation.parquet``, ``test.parquet`` (string columns
``pair_id, question_id, group, prompt, chosen, rejected``), ``groups.json`` (group names in
group-id order, slugs, counts, and each split file's rows and sha256), ``summary.json`` and ``quarantine.jsonl`` (one rejected record per
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
from grpo_core.hashing import hash_file

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


FILES_KEY = "files"
"""In ``groups.json``: ``{split file: {"rows": n, "sha256": hex}}`` as written, so that a split
file changed afterwards (cut short, replaced) is found before it is trained or evaluated on."""

PREPARE_AGAIN = (
    "prepare the folder again (grpo data prepare, or delete it to let the cache remake it)"
)


class PreparedDataError(ValueError):
    """A prepared-data folder whose files are missing or disagree with its ``groups.json``."""


def split_file_records(folder: Path) -> dict[str, dict[str, Any]]:
    """The :data:`FILES_KEY` entry of the split files written in ``folder``."""
    import pyarrow.parquet as pq

    return {
        name: {"rows": pq.read_metadata(folder / name).num_rows, "sha256": hash_file(folder / name)}
        for name in SPLIT_FILES.values()
    }


def load_groups(directory: str | Path) -> GroupTable:
    """The groups of a prepared dataset (``groups.json``).

    Raises:
        PreparedDataError: ``groups.json`` is missing, not JSON, or lacks a field or its shape.
    """
    document = _groups_document(Path(directory))
    path = Path(directory) / GROUPS_FILE
    try:
        names = tuple(document["groups"])
        table = GroupTable(
            names=names,
            slugs=dict(document["slugs"]),
            counts={name: {s: int(c[s]) for s in SPLITS} for name, c in document["counts"].items()},
            imbalance_ratio=float(document["imbalance_ratio"]),
        )
    except KeyError as missing:
        raise PreparedDataError(f"{path}: no {missing} entry; {PREPARE_AGAIN}") from None
    except (TypeError, ValueError, AttributeError) as error:
        raise PreparedDataError(f"{path}: not as written ({error}); {PREPARE_AGAIN}") from None
    if (
        not all(isinstance(n, str) for n in names)
        or sorted(table.slugs.values()) != sorted(names)
        or set(table.counts) != set(names)
    ):
        raise PreparedDataError(
            f"{path}: its groups, slugs and counts disagree (edited?); {PREPARE_AGAIN}"
        )
    return table


def _groups_document(directory: Path) -> dict[str, Any]:
    path = directory / GROUPS_FILE
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PreparedDataError(
            f"{path}: missing, so {directory} is no prepared data folder; {PREPARE_AGAIN}"
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise PreparedDataError(f"{path}: not JSON ({error}); {PREPARE_AGAIN}") from None
    if not isinstance(document, dict):
        raise PreparedDataError(f"{path}: not a JSON object; {PREPARE_AGAIN}")
    return document


def check_split_file(directory: str | Path, split: str, groups: GroupTable | None = None) -> None:
    """Raise :class:`PreparedDataError` naming the file unless ``split``'s file is there and agrees
    with ``groups.json``: its row count with the counts, its sha256 with the one written at prepare
    time (folders prepared before the hash was written: the counts only)."""
    import pyarrow.parquet as pq

    directory = Path(directory)
    groups = load_groups(directory) if groups is None else groups
    path = directory / SPLIT_FILES[split]
    if not path.is_file():
        raise PreparedDataError(f"{path}: missing from the prepared folder; {PREPARE_AGAIN}")
    try:
        rows = pq.read_metadata(path).num_rows
    except Exception as error:  # pyarrow raises several unrelated types for unreadable files
        raise PreparedDataError(
            f"{path}: unreadable parquet file ({error}); {PREPARE_AGAIN}"
        ) from None
    counted = sum(c[split] for c in groups.counts.values())
    if rows != counted:
        raise PreparedDataError(
            f"{path}: holds {rows} pairs, {GROUPS_FILE} counts {counted}: the file changed after "
            f"it was prepared; {PREPARE_AGAIN}"
        )
    written = _groups_document(directory).get(FILES_KEY, {}).get(SPLIT_FILES[split])
    if written is not None and hash_file(path) != written.get("sha256"):
        raise PreparedDataError(
            f"{path}: its content differs from what was prepared (sha256 in {GROUPS_FILE}); "
            f"{PREPARE_AGAIN}"
        )


def check_prepared(directory: str | Path) -> GroupTable:
    """Check a whole prepared folder (``groups.json`` and every split file) before any work;
    return its groups. Raises :class:`PreparedDataError` naming the file at fault."""
    groups = load_groups(directory)
    for split in SPLITS:
        check_split_file(directory, split, groups)
    return groups


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
    check_split_file(directory, split, groups)
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
