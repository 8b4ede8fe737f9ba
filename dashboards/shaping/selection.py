"""Choosing runs: flow runs (MLflow parent runs), their children, and filters."""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd


def flow_runs(runs: pd.DataFrame, run_type: str = "experiment") -> pd.DataFrame:
    """Parent runs of ``run_type`` (``experiment`` or ``synthetic``), latest first, with a ``label``."""
    parents = runs[runs["run_type"] == run_type].copy()
    parents = parents.sort_values("start_time", ascending=False, na_position="last")
    parents["label"] = [_parent_label(row) for row in parents.itertuples()]
    return parents.reset_index(drop=True)


def _parent_label(row) -> str:
    name = row.flow_run_name or row.run_name or row.run_id[:8]
    when = (
        pd.Timestamp(row.start_time).strftime("%Y-%m-%d %H:%M") if pd.notna(row.start_time) else "?"
    )
    status = "" if row.status in (None, "FINISHED") else f" ({str(row.status).lower()})"
    return f"{name} · {when}{status}"


def children(
    runs: pd.DataFrame, parent_ids: Iterable[str], run_type: str = "train"
) -> pd.DataFrame:
    """Runs of ``run_type`` whose parent is one of ``parent_ids`` (``None`` in it: runs with no parent)."""
    parent_ids = list(parent_ids)
    of_type = runs[runs["run_type"] == run_type]
    mask = of_type["parent_run_id"].isin([p for p in parent_ids if p is not None])
    if None in parent_ids:
        mask |= of_type["parent_run_id"].isna()
    return of_type[mask].reset_index(drop=True)


def filter_runs(
    runs: pd.DataFrame,
    methods: Iterable[str] | None = None,
    datasets: Iterable[str] | None = None,
    seeds: Iterable[int] | None = None,
) -> pd.DataFrame:
    """Rows whose method, dataset and seed are among the given ones (``None``: no filter)."""
    mask = pd.Series(True, index=runs.index)
    if methods is not None:
        mask &= runs["method"].isin(list(methods))
    if datasets is not None:
        mask &= runs["dataset"].isin(list(datasets))
    if seeds is not None:
        mask &= runs["seed"].isin(list(seeds))
    return runs[mask].reset_index(drop=True)
