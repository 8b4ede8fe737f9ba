"""Per-rater preference data (``format="raters"``) and groups made of several columns.

A rater row says which of two responses one rater preferred: ``prompt, response_a, response_b,
preference, rater_id`` and the rater's attributes, in the row or in a table of raters joined on the
rater id (``raters.table``). The group is an attribute (one of ``group_columns``) or the combination
of several (intersectional groups such as ``Democrat x Black``). Each row becomes a
pairs record (chosen = the preferred response) for :func:`grpo_core.data.pairs.pairs_from_records`,
so the pairs' checks apply; the same comparison rated by several raters of a group gives several
pairs (votes), one rater rating it twice is a duplicate.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from grpo_core.data.config import GROUP_JOIN, DataConfig
from grpo_core.data.ids import make_pair_id
from grpo_core.data.readers import RawRecord, RawSource, check_columns, open_source
from grpo_core.data.validation import (
    MISSING_COLUMN,
    MISSING_GROUP,
    NO_PREFERENCE,
    DataValidationError,
    RecordProblem,
    RejectionLog,
)

DERIVED_GROUP = "__group__"
"""The record key of a group made here (several columns, or a rater's attributes)."""


def pairs_view(config: DataConfig) -> DataConfig:
    """The config :func:`pairs_from_records` reads the records made here with: canonical columns
    for rater rows, the derived group column."""
    update: dict[str, Any] = {"group_columns": (DERIVED_GROUP,)}
    if config.format == "raters":
        update |= {"format": "pairs", "columns": {}}
    return config.model_copy(update=update)


def rater_attributes(config: DataConfig) -> dict[str, dict[str, Any]]:
    """The rows of ``raters.table`` by rater id (as text); a missing id column, an empty or a
    repeated id stops with the table's file and line."""
    table = config.raters.table
    id_column = config.column("rater_id")
    source = open_source(table or "", "auto", None)
    check_columns(source, [id_column])
    rows: dict[str, dict[str, Any]] = {}
    where: dict[str, str] = {}
    for record in source.records:
        if record.values is None:
            raise DataValidationError(f"{source.label}, {record.location}: {record.problem}")
        rater = _text(record.values.get(id_column))
        if not rater:
            raise DataValidationError(
                f"{source.label}, {record.location}, field '{id_column}': empty rater id"
            )
        if rater in rows:
            raise DataValidationError(
                f"{source.label}, {record.location}, field '{id_column}': rater {rater!r} is "
                f"already at {where[rater]}; one row per rater"
            )
        rows[rater], where[rater] = dict(record.values), str(record.location)
    return rows


def choices_as_pairs(source: RawSource, config: DataConfig, log: RejectionLog) -> RawSource:
    """The rater rows of ``source`` as pairs records (rows without a preference or a group are
    rejected into ``log``)."""
    columns = {name: config.column(name) for name in ("prompt", "response_a", "response_b")}
    preference, rater_id = config.column("preference"), config.column("rater_id")
    check_columns(source, [*columns.values(), preference, rater_id])
    attributes = rater_attributes(config) if config.raters.table else None
    prefers_a, prefers_b = set(config.raters.prefers_a), set(config.raters.prefers_b)

    def records() -> Iterator[RawRecord]:
        for record in source.records:
            if record.values is None:
                yield record
                continue
            values = record.values
            try:
                rater = _text(values.get(rater_id))
                if not rater:
                    raise RecordProblem(MISSING_GROUP, rater_id, "empty rater id")
                if attributes is not None and rater not in attributes:
                    raise RecordProblem(
                        MISSING_GROUP, rater_id, f"rater {rater!r} is not in {config.raters.table}"
                    )
                merged = {**(attributes or {}).get(rater, {}), **values}
                choice = _text(values.get(preference))
                a, b = values.get(columns["response_a"]), values.get(columns["response_b"])
                if choice in prefers_a:
                    chosen, rejected = a, b
                elif choice in prefers_b:
                    chosen, rejected = b, a
                else:
                    raise RecordProblem(
                        NO_PREFERENCE, preference,
                        f"preference {choice!r} is none of {sorted(prefers_a)} (first response) "
                        f"or {sorted(prefers_b)} (second)",
                    )  # fmt: skip
                group = group_of(merged, config)
            except RecordProblem as problem:
                log.reject(problem.reason, record.location, problem.field, problem.message, values)
                continue
            prompt = values.get(columns["prompt"])
            pair = {"prompt": prompt, "chosen": chosen, "rejected": rejected, DERIVED_GROUP: group}
            if all(isinstance(x, str) for x in (prompt, chosen, rejected)):
                pair["pair_id"] = make_pair_id(f"rater {rater}", prompt, chosen, rejected)
            if config.column("question_id") in values:
                pair["question_id"] = values[config.column("question_id")]
            yield RawRecord(record.location, pair)

    return RawSource(source.label, None, records(), source.columns_location)


def with_group_columns(source: RawSource, config: DataConfig, log: RejectionLog) -> RawSource:
    """``format="pairs"`` with several ``group_columns``: each record gets the combination of
    their values."""
    check_columns(source, list(config.group_columns or ()))

    def records() -> Iterator[RawRecord]:
        for record in source.records:
            if record.values is None:
                yield record
                continue
            try:
                group = group_of(record.values, config)
            except RecordProblem as problem:
                log.reject(
                    problem.reason, record.location, problem.field, problem.message, record.values
                )
                continue
            yield RawRecord(record.location, {**record.values, DERIVED_GROUP: group})

    columns = None if source.columns is None else (*source.columns, DERIVED_GROUP)
    return RawSource(source.label, columns, records(), source.columns_location)


def group_of(values: Mapping[str, Any], config: DataConfig) -> str:
    """The group of a record: its ``group_columns`` values joined with `` x `` (one column: its
    value). Raises :class:`RecordProblem` for a missing or empty value."""
    columns = config.group_columns or (config.group_field,)
    parts = []
    for column in columns:
        if column not in values:
            raise RecordProblem(MISSING_COLUMN, column, "group attribute missing")
        text = _text(values[column])
        if not text:
            raise RecordProblem(MISSING_GROUP, column, "group attribute is empty")
        parts.append(text)
    return GROUP_JOIN.join(parts)


def _text(value: Any) -> str:
    """A value as stripped text (numbers too: an id or an age band read from csv or parquet)."""
    if value is None or isinstance(value, bool):
        return "" if value is None else str(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()
