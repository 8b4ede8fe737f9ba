"""Task: compare the methods per group, as a Prefect table artifact and a small returned table."""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from prefect import task
from prefect.artifacts import create_table_artifact

from grpo_core import names


def comparison_rows(
    results: Sequence[dict[str, Any]], split: str, slugs: dict[str, str]
) -> list[dict[str, Any]]:
    """One row per method: the summary metrics and every group's headline metrics, mean over seeds.

    ``results``: ``{"method", "seed", "metrics": {eval keys}}`` per trained run. Row keys are the
    metric keys without their split (``worst_group/loss``, ``group/<slug>/loss``).
    """
    by_method: dict[str, list[dict[str, float]]] = defaultdict(list)
    for result in results:
        by_method[result["method"]].append(result["metrics"])
    columns = [names.EvalKey(split, *names.split_aggregate(key)) for key in names.SUMMARY]  # type: ignore[misc]
    for slug in slugs:
        columns += [names.EvalKey(split, "group", m, slug) for m in names.HEADLINE_METRICS]
    rows = []
    for method, runs in by_method.items():
        row: dict[str, Any] = {"method": method, "seeds": len(runs)}
        for column in columns:
            values = [m[str(column)] for m in runs if str(column) in m]
            if values:
                row[column.aggregate] = round(statistics.fmean(values), 4)
        rows.append(row)
    return rows


def best_method(rows: Sequence[dict[str, Any]], metric: str) -> str | None:
    """The method with the best mean of ``metric`` (e.g. ``worst_group/loss``; direction from the metric)."""
    scored = [r for r in rows if metric in r]
    if not scored:
        return None
    higher = names.direction(*names.split_aggregate(metric))
    return (max if higher else min)(scored, key=lambda r: r[metric])["method"]


@task(name="compare-methods")
def compare_methods(
    results: list[dict[str, Any]], slugs: dict[str, str], split: str = "test"
) -> dict[str, Any]:
    """Per-group comparison of every method on ``split``; publishes a table artifact."""
    rows = comparison_rows(results, split, slugs)
    table = []
    for row in rows:
        shown = {k: v for k, v in row.items() if names.split_aggregate(k)[0] != "group"}
        for slug, name in slugs.items():
            for metric, label in zip(names.HEADLINE_METRICS, ("loss", "reward acc"), strict=True):
                if names.aggregate("group", metric, slug) in row:
                    shown[f"{name} {label}"] = row[names.aggregate("group", metric, slug)]
        table.append(shown)
    create_table_artifact(
        key=f"per-group-{split}",
        table=table,
        description=f"Per-group {split} metrics per method (mean over seeds). Worst group: max loss, min accuracy.",
    )
    worst_loss, worst_accuracy = (names.aggregate("worst_group", m) for m in names.HEADLINE_METRICS)
    return {
        "split": split,
        "rows": rows,
        "best_worst_group_loss": best_method(rows, worst_loss),
        "best_worst_group_reward_accuracy": best_method(rows, worst_accuracy),
    }
