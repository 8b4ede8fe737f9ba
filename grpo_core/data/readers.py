"""Raw records from jsonl, json, csv and parquet files and from Hugging Face datasets.

Each record keeps its :class:`~grpo_core.data.validation.Location`. A line that cannot be parsed
becomes a record without values (the adapters reject it as ``malformed_line``); a file that cannot
be read at all (a broken json array, a csv without a header) raises at once. Blank lines of jsonl
and csv files hold no record and are skipped. A hub dataset name is only tried when the user asks
for ``file_type="hf_hub"``; nothing is ever downloaded otherwise.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from grpo_core.data.validation import MISSING_COLUMN, DataValidationError, Location

FileType = Literal["auto", "jsonl", "json", "csv", "parquet", "hf_local", "hf_hub"]

_SUFFIXES: dict[str, FileType] = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
}


@dataclass(frozen=True)
class RawRecord:
    """One record as read; ``values`` is None when it could not be parsed (see ``problem``)."""

    location: Location
    values: dict[str, Any] | None
    problem: str = ""
    raw: str | None = None


@dataclass(frozen=True)
class RawSource:
    """The records of one source and, where the format has them, its column names."""

    label: str
    columns: tuple[str, ...] | None
    records: Iterator[RawRecord]
    columns_location: Location | None = None


def check_columns(source: RawSource, required: list[str]) -> None:
    """Fail at once when a source with known columns lacks a required one (always an error:
    a missing column is a mapping problem, not a bad record)."""
    if source.columns is None:
        return
    for name in required:
        if name not in source.columns:
            raise DataValidationError(
                f"{source.columns_location}, field '{name}': column missing; the source has "
                f"columns {list(source.columns)} (map yours with data.columns or data.group_columns; "
                "grpo data prepare: --column, --group-column) "
                f"[{MISSING_COLUMN}]",
                reason=MISSING_COLUMN,
                location=source.columns_location,
                field=name,
            )


def detect_file_type(path: str | Path) -> FileType:
    """The file type from the name (``.gz`` is looked through); a folder is a local HF dataset."""
    path = Path(path)
    if path.is_dir():
        return "hf_local"
    name = path.name.lower()
    if name.endswith(".gz"):
        name = name[:-3]
    for suffix, file_type in _SUFFIXES.items():
        if name.endswith(suffix):
            return file_type
    raise ValueError(
        f"{path}: cannot tell the file type from its name; use jsonl, json, csv or parquet "
        "(optionally .gz), a local Hugging Face dataset folder, or set file_type"
    )


def check_sources(data) -> None:
    """Raise ``FileNotFoundError`` at once, naming the field, for a file of ``data`` (a
    :class:`~grpo_core.data.config.DataConfig`) that is not there: before a flow starts, not in it."""
    files = {
        "data.path": data.path if data.file_type != "hf_hub" else None,
        "data.raters.table": data.raters.table if data.format == "raters" else None,
    }
    for field, path in files.items():
        if path is not None and not Path(path).exists():
            raise FileNotFoundError(f"{field} {path}: no such file or folder")


def open_source(
    path: str | Path, file_type: FileType = "auto", hf_split: str | None = None
) -> RawSource:
    """Open a source for reading its records.

    Args:
        path: a file, a local dataset folder, or (``file_type="hf_hub"`` only) a hub dataset name.
        file_type: ``"auto"`` guesses from the name (:func:`detect_file_type`).
        hf_split: the split of a Hugging Face dataset with several splits.
    """
    label = str(path)
    if file_type == "hf_hub":
        return _hf_source(label, hf_split, hub=True)
    path = Path(path)
    if not path.exists():
        hint = " (to load a Hugging Face Hub dataset by name, set file_type='hf_hub')"
        raise FileNotFoundError(f"{label}: no such file or folder{hint if '/' in label else ''}")
    if file_type == "auto":
        file_type = detect_file_type(path)
    if file_type == "jsonl":
        return RawSource(label, None, _jsonl_records(path, label))
    if file_type == "json":
        return RawSource(label, None, _json_records(path, label))
    if file_type == "csv":
        return _csv_source(path, label)
    if file_type == "parquet":
        return _parquet_source(path, label)
    return _hf_source(label, hf_split, hub=False)


def _open_binary(path: Path) -> io.BufferedIOBase:
    return gzip.open(path, "rb") if path.name.lower().endswith(".gz") else open(path, "rb")


def _jsonl_records(path: Path, label: str) -> Iterator[RawRecord]:
    with _open_binary(path) as handle:
        for number, raw_bytes in enumerate(handle, start=1):
            location = Location(label, "line", number)
            try:
                text = raw_bytes.decode("utf-8")
            except UnicodeDecodeError as error:
                yield RawRecord(
                    location, None, f"not valid UTF-8 ({error.reason})", repr(raw_bytes)
                )
                continue
            if not text.strip():
                continue
            try:
                value = json.loads(text)
            except json.JSONDecodeError as error:
                problem = f"not valid JSON ({error.msg} at character {error.pos + 1})"
                yield RawRecord(location, None, problem, text.rstrip("\n"))
                continue
            if not isinstance(value, dict):
                problem = f"expected a JSON object, got {type(value).__name__}"
                yield RawRecord(location, None, problem, text.rstrip("\n"))
                continue
            yield RawRecord(location, value)


def _json_records(path: Path, label: str) -> Iterator[RawRecord]:
    with _open_binary(path) as handle:
        raw = handle.read()
        try:
            data = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as error:
            line = raw[: error.start].count(b"\n") + 1
            raise DataValidationError(
                f"{label}, line {line}, field '(file)': not valid UTF-8 ({error.reason}) "
                "[malformed_line]",
                reason="malformed_line",
                location=Location(label, "line", line),
                field="(file)",
            ) from None
        except json.JSONDecodeError as error:
            raise DataValidationError(
                f"{label}, line {error.lineno}, column {error.colno}, field '(file)': "
                f"not valid JSON ({error.msg}) [malformed_line]",
                reason="malformed_line",
                location=Location(label, "line", error.lineno),
                field="(file)",
            ) from None
    if not isinstance(data, list):
        raise DataValidationError(
            f"{label}, field '(file)': expected a JSON array of objects, got {type(data).__name__} "
            "(use .jsonl for one object per line)",
            reason="malformed_line",
            field="(file)",
        )
    for index, value in enumerate(data):
        location = Location(label, "item", index)
        if isinstance(value, dict):
            yield RawRecord(location, value)
        else:
            problem = f"expected a JSON object, got {type(value).__name__}"
            yield RawRecord(location, None, problem, json.dumps(value, default=str))


def _csv_source(path: Path, label: str) -> RawSource:
    handle = io.TextIOWrapper(_open_binary(path), encoding="utf-8-sig", newline="")
    reader = csv.reader(handle)
    try:
        header = next(reader)
    except StopIteration:
        handle.close()
        raise DataValidationError(f"{label}, line 1: empty file, expected a header line") from None
    except (csv.Error, UnicodeDecodeError) as error:
        handle.close()
        raise DataValidationError(f"{label}, line 1: unreadable header ({error})") from None
    duplicated = sorted({name for name in header if header.count(name) > 1})
    if duplicated:
        handle.close()
        raise DataValidationError(f"{label}, line 1: duplicated column names {duplicated}")
    records = _csv_records(handle, reader, header, label)
    return RawSource(label, tuple(header), records, Location(label, "line", 1))


def _csv_records(
    handle: io.TextIOWrapper, reader: Any, header: list[str], label: str
) -> Iterator[RawRecord]:
    with handle:
        previous_end = reader.line_num
        while True:
            start = previous_end + 1
            try:
                row = next(reader)
            except StopIteration:
                return
            except (csv.Error, UnicodeDecodeError) as error:
                raise DataValidationError(
                    f"{label}, line {start}, field '(line)': unreadable CSV ({error}) "
                    "[malformed_line]",
                    reason="malformed_line",
                    location=Location(label, "line", start),
                    field="(line)",
                ) from None
            previous_end = reader.line_num
            location = Location(label, "line", start)
            if not row:
                continue
            if len(row) != len(header):
                problem = f"has {len(row)} fields, the header has {len(header)}"
                yield RawRecord(location, None, problem, ",".join(row))
                continue
            yield RawRecord(location, dict(zip(header, row, strict=True)))


def _parquet_source(path: Path, label: str) -> RawSource:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as error:  # pyarrow raises several unrelated types for unreadable files
        raise DataValidationError(f"{label}: unreadable parquet file ({error})") from None
    rows = table.to_pylist()
    records = (RawRecord(Location(label, "row", i), row) for i, row in enumerate(rows))
    return RawSource(label, tuple(table.column_names), records, Location(label, "columns", 0))


def _hf_source(label: str, split: str | None, *, hub: bool) -> RawSource:
    import datasets

    try:
        if hub:
            loaded = datasets.load_dataset(label, split=split)
        elif any((Path(label) / name).exists() for name in ("dataset_dict.json", "state.json")):
            loaded = datasets.load_from_disk(label)
        else:
            loaded = datasets.load_dataset(label, split=split)
    except (FileNotFoundError, ValueError, OSError) as error:
        raise ValueError(f"{label}: cannot load as a Hugging Face dataset ({error})") from None
    if isinstance(loaded, datasets.DatasetDict):
        names = list(loaded.keys())
        if split is None and len(names) == 1:
            split = names[0]
        if split not in loaded:
            raise ValueError(f"{label}: choose a split with hf_split, one of {names}")
        loaded = loaded[split]
    split_label = f"{label} [split {split}]" if split else label
    names_of = {
        column: feature.int2str
        for column, feature in loaded.features.items()
        if isinstance(feature, datasets.ClassLabel)
    }
    records = _hf_records(loaded, split_label, names_of)
    return RawSource(
        split_label, tuple(loaded.column_names), records, Location(split_label, "columns", 0)
    )


def _hf_records(dataset: Any, label: str, names_of: dict[str, Any]) -> Iterator[RawRecord]:
    for index, row in enumerate(dataset):
        for column, int2str in names_of.items():
            if isinstance(row.get(column), int):
                row[column] = int2str(row[column])
        yield RawRecord(Location(label, "row", index), row)
