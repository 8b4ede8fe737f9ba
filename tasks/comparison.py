"""Task: compare the methods per group, as a Prefect table artifact and a small returned table."""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from prefect import task
from prefect.artifacts import create_table_artifact

from grpo_core.evaluation import HIGHER_IS_BETTER

HEADLINE = (
    "worst_group/loss",
    "average/loss",
    "worst_group/reward_accuracy",
    "average/reward_accuracy",
    "imbalance/loss",
)


def comparison_rows(
    results: Sequence[dict[str, Any]], split: str, slugs: dict[str, str]
) -> list[dict[str, Any]]:
    """One row per method: headline metrics and every group's loss and reward accuracy, mean over seeds.

    ``results``: ``{"method", "seed", "metrics": {eval keys}}`` per trained run.
    """
    by_method: dict[str, list[dict[str, float]]] = defaultdict(list)
    for result in results:
        by_method[result["method"]].append(result["metrics"])
    columns = [f"eval/{split}/{name}" for name in HEADLINE]
    for slug in slugs:
        columns += [f"eval/{split}/group/{slug}/loss", f"eval/{split}/group/{slug}/reward_accuracy"]
    rows = []
    for method, runs in by_method.items():
        row: dict[str, Any] = {"method": method, "seeds": len(runs)}
        for column in columns:
            values = [m[column] for m in runs if column in m]
            if values:
                row[column.removeprefix(f"eval/{split}/")] = round(statistics.fmean(values), 4)
        rows.append(row)
    return rows


def best_method(rows: Sequence[dict[str, Any]], metric: str) -> str | None:
    """The method with the best mean of ``metric`` (e.g. ``worst_group/loss``; direction from the metric)."""
    scored = [r for r in rows if metric in r]
    if not scored:
        return None
    higher = HIGHER_IS_BETTER[metric.rsplit("/", 1)[-1]]
    return (max if higher else min)(scored, key=lambda r: r[metric])["method"]


@task(name="compare-methods")
def compare_methods(
    results: list[dict[str, Any]], slugs: dict[str, str], split: str = "test"
) -> dict[str, Any]:
    """Per-group comparison of every method on ``split``; publishes a table artifact."""
    rows = comparison_rows(results, split, slugs)
    names = {slug: name for slug, name in slugs.items()}
    table = []
    for row in rows:
        shown = {k: v for k, v in row.items() if not k.startswith("group/")}
        for slug, name in names.items():
            if f"group/{slug}/loss" in row:
                shown[f"{name} loss"] = row[f"group/{slug}/loss"]
                shown[f"{name} reward acc"] = row.get(f"group/{slug}/reward_accuracy")
        table.append(shown)
    create_table_artifact(
        key=f"per-group-{split}",
        table=table,
        description=f"Per-group {split} metrics per method (mean over seeds). Worst group: max loss, min accuracy.",
    )
    return {
        "split": split,
        "rows": rows,
        "best_worst_group_loss": best_method(rows, "worst_group/loss"),
        "best_worst_group_reward_accuracy": best_method(rows, "worst_group/reward_accuracy"),
    }
