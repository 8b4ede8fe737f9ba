"""The tables every view draws from: one row per run, the latest metrics, the step histories."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import pandas as pd

from grpo_core import names

RUN_COLUMNS = (
    "run_id",
    "parent_run_id",
    "run_type",
    "run_name",
    "status",
    "start_time",
    "end_time",
    *(c for c in names.GRPO_TAG_COLUMNS if c not in ("run_type", "group_slugs")),
    *names.PREFECT_TAG_COLUMNS,
    "git_commit",
    "group_slugs",
)
"""Columns of ``RunTables.runs``; tags ``grpo.<x>`` become column ``<x>``."""


@dataclass(frozen=True)
class RunTables:
    """Everything the views draw, for a set of runs.

    Attributes:
        runs: one row per run, columns :data:`RUN_COLUMNS` (``seed`` an integer or missing).
        latest: ``run_id, key, value``: the latest value of every metric of every run.
        history: ``run_id, key, step, value``: the step history of :data:`HISTORY_PREFIXES` metrics.
        groups: group slug -> display name, in group-id order.
    """

    runs: pd.DataFrame
    latest: pd.DataFrame
    history: pd.DataFrame
    groups: Mapping[str, str] = field(default_factory=dict)

    def select(self, run_ids: Iterable[str]) -> RunTables:
        """The same tables restricted to ``run_ids``."""
        keep = set(run_ids)
        return replace(
            self,
            runs=self.runs[self.runs["run_id"].isin(keep)].reset_index(drop=True),
            latest=self.latest[self.latest["run_id"].isin(keep)].reset_index(drop=True),
            history=self.history[self.history["run_id"].isin(keep)].reset_index(drop=True),
        )

    def name(self, slug: str) -> str:
        """The display name of a group slug (the slug itself when unknown)."""
        return self.groups.get(slug, slug)


def json_records(table: pd.DataFrame) -> list[dict]:
    """A table's rows as JSON-safe dicts (NaN, e.g. the interval of a single seed, becomes None)."""
    return json.loads(table.to_json(orient="records", double_precision=15))


def make_runs(rows: Iterable[Mapping[str, object]]) -> pd.DataFrame:
    """A runs table with every column of :data:`RUN_COLUMNS`: missing entries ``None``, ``seed``
    an integer (``Int64``), ``start_time`` and ``end_time`` UTC timestamps."""
    frame = pd.DataFrame(
        [{c: row.get(c) for c in RUN_COLUMNS} for row in rows], columns=list(RUN_COLUMNS)
    )
    frame = frame.astype({c: object for c in RUN_COLUMNS})
    frame["seed"] = pd.to_numeric(frame["seed"], errors="coerce").astype("Int64")
    for column in ("start_time", "end_time"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame


def make_tables(
    runs: Iterable[Mapping[str, object]],
    latest: Mapping[str, Mapping[str, float]],
    history: Mapping[str, Mapping[str, Sequence[tuple[int, float]]]] | None = None,
    groups: Mapping[str, str] | None = None,
) -> RunTables:
    """:class:`RunTables` from plain Python: ``latest[run_id][key] = value`` and
    ``history[run_id][key] = [(step, value), ...]``; ``groups`` defaults to the runs' slug tags."""
    latest_rows = [(r, k, float(v)) for r, metrics in latest.items() for k, v in metrics.items()]
    history_rows = [
        (r, k, int(s), float(v))
        for r, series in (history or {}).items()
        for k, points in series.items()
        for s, v in points
    ]
    frame = make_runs(runs)
    return RunTables(
        runs=frame,
        latest=pd.DataFrame(latest_rows, columns=["run_id", "key", "value"]),
        history=pd.DataFrame(history_rows, columns=["run_id", "key", "step", "value"]),
        groups=dict(groups) if groups is not None else group_names(frame),
    )


def empty_tables() -> RunTables:
    return make_tables([], {})


def group_names(runs: pd.DataFrame, ordered_names: Sequence[str] = ()) -> dict[str, str]:
    """Slug -> name from the runs' ``group_slugs`` tags (JSON), ordered as ``ordered_names`` when given."""
    names: dict[str, str] = {}
    for text in runs["group_slugs"].dropna():
        try:
            names.update({str(k): str(v) for k, v in json.loads(text).items()})
        except (TypeError, ValueError, AttributeError):
            continue
    rank = {name: i for i, name in enumerate(ordered_names)}
    return dict(sorted(names.items(), key=lambda item: rank.get(item[1], len(rank))))
