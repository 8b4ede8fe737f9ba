"""Task: compare the methods per group, as a Prefect table artifact and a small returned table."""

from __future__ import annotations

import csv
import math
import tempfile
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from prefect import task
from prefect.artifacts import create_table_artifact

from grpo_core import names
from grpo_core.methods import is_group_robust, plain_counterpart
from grpo_core.stats import t_interval
from tasks import tracking
from tasks.records import ChildResult, Comparison, ParentRun, UnseenGroups

PER_GROUP_COLUMNS = ("method", "split", "group", "metric", "mean", "lo", "hi", "seeds")


def comparison_rows(
    results: Sequence[dict[str, Any]], split: str, slugs: dict[str, str]
) -> list[dict[str, Any]]:
    """One row per method: the summary metrics and every group's headline metrics over seeds.

    ``results``: ``{"method", "seed", "metrics": {eval keys}}`` per trained run. Row keys are the
    metric keys without their split (``worst_group/loss``, ``group/<slug>/loss``) holding the mean
    over seeds; ``row["ci95"][key]`` is the half-width of its 95% interval (NaN with one seed).
    """
    by_method: dict[str, list[dict[str, float]]] = defaultdict(list)
    for result in results:
        by_method[result["method"]].append(result["metrics"])
    columns = [names.EvalKey(split, *names.split_aggregate(key)) for key in names.SUMMARY]  # type: ignore[misc]
    for slug in slugs:
        columns += [names.EvalKey(split, "group", m, slug) for m in names.HEADLINE_METRICS]
    rows = []
    for method, runs in by_method.items():
        row: dict[str, Any] = {"method": method, "seeds": len(runs), "ci95": {}}
        for column in columns:
            mean, half, n = t_interval(m.get(str(column)) for m in runs)
            if n:
                row[column.aggregate] = mean
                row["ci95"][column.aggregate] = half
        rows.append(row)
    return rows


def best_method(rows: Sequence[dict[str, Any]], metric: str) -> str | None:
    """The method with the best mean of ``metric`` (e.g. ``worst_group/loss``; direction from the metric)."""
    scored = [r for r in rows if metric in r]
    if not scored:
        return None
    higher = names.direction(*names.split_aggregate(metric))
    return (max if higher else min)(scored, key=lambda r: r[metric])["method"]


def robust_gains(
    rows: Sequence[dict[str, Any]], slugs: dict[str, str], metric: str = "reward_accuracy"
) -> list[dict[str, Any]]:
    """What each group-robust method did for the group its plain counterpart serves worst.

    For ``gr_x`` beside ``x``: the group with the worst mean ``metric`` under ``x``, both methods'
    means and 95% intervals on it, whether the intervals are apart with ``gr_x`` better, and both
    averages over groups (what the gain costs, or adds, on average).
    """
    by_method = {row["method"]: row for row in rows}
    higher = names.HIGHER_IS_BETTER[metric]
    gains = []
    for method, row in by_method.items():
        baseline = by_method.get(plain_counterpart(method)) if is_group_robust(method) else None
        if baseline is None:
            continue
        scored = [s for s in slugs if names.aggregate("group", metric, s) in baseline]
        if not scored:
            continue
        pick = max if not higher else min
        slug = pick(scored, key=lambda s: baseline[names.aggregate("group", metric, s)])
        key, average = names.aggregate("group", metric, slug), names.aggregate("average", metric)
        before = (baseline[key], baseline["ci95"][key])
        after = (row[key], row["ci95"][key])
        low, high = (before, after) if higher else (after, before)
        apart = (low[0] + low[1]) < (high[0] - high[1])  # NaN half-widths compare False
        gains.append(
            {
                "method": method,
                "baseline": baseline["method"],
                "metric": metric,
                "group": slugs[slug],
                "slug": slug,
                "baseline_mean": before[0],
                "baseline_ci95": before[1],
                "mean": after[0],
                "ci95": after[1],
                "apart": bool(apart),
                "seeds": min(row["seeds"], baseline["seeds"]),
                "baseline_average": baseline.get(average),
                "average": row.get(average),
            }
        )
    return gains


def describe_gain(gain: dict[str, Any], split: str) -> str:
    """One sentence a person can act on, e.g. ``GR-IPO vs IPO on Southland (the group IPO serves
    worst), test reward accuracy 0.631 [0.614, 0.648] -> 0.781 [0.742, 0.820]: intervals apart ...``."""

    def interval(mean: float, half: float) -> str:
        return (
            f"{mean:.3f}"
            if math.isnan(half)
            else f"{mean:.3f} [{mean - half:.3f}, {mean + half:.3f}]"
        )

    method, baseline = gain["method"].upper().replace("_", "-"), gain["baseline"].upper()
    seeds = gain["seeds"]
    if seeds < 2:
        verdict = "one seed, so no interval: run more seeds before acting on it"
    elif gain["apart"]:
        verdict = f"95% intervals over {seeds} seeds apart"
    else:
        verdict = f"95% intervals over {seeds} seeds overlap: no clear difference"
    text = (
        f"{method} vs {baseline} on {gain['group']} (the group {baseline} serves worst), {split} "
        f"{names.metric_label(gain['metric'])} {interval(gain['baseline_mean'], gain['baseline_ci95'])} -> "
        f"{interval(gain['mean'], gain['ci95'])}: {verdict}"
    )
    if gain["average"] is not None and gain["baseline_average"] is not None:
        change = gain["average"] - gain["baseline_average"]
        text += f"; average over groups {gain['baseline_average']:.3f} -> {gain['average']:.3f} ({change:+.3f})"
    return text + "."


@task(name="compare-methods")
def compare_methods(
    results: Sequence[ChildResult], slugs: dict[str, str], split: str = "test"
) -> Comparison:
    """Per-group comparison of every method on ``split``; publishes a table artifact."""
    rows = comparison_rows([r.as_json() for r in results], split, slugs)
    table = []
    for row in rows:
        shown = {
            k: round(v, 4)
            for k, v in row.items()
            if isinstance(v, float) and names.split_aggregate(k)[0] != "group"
        }
        shown = {"method": row["method"], "seeds": row["seeds"], **shown}
        for slug, name in slugs.items():
            for metric, label in zip(names.HEADLINE_METRICS, ("loss", "reward acc"), strict=True):
                key = names.aggregate("group", metric, slug)
                if key in row:
                    shown[f"{name} {label}"] = round(row[key], 4)
        table.append(shown)
    gains = robust_gains(rows, slugs)
    create_table_artifact(
        key=f"per-group-{split}",
        table=table,
        description=f"Per-group {split} metrics per method (mean over seeds). Worst group: max loss, min accuracy. "
        + " ".join(describe_gain(g, split) for g in gains),
    )
    worst_loss, worst_accuracy = (names.aggregate("worst_group", m) for m in names.HEADLINE_METRICS)
    return Comparison(
        split=split, rows=rows, gains=gains,
        best_worst_group_loss=best_method(rows, worst_loss),
        best_worst_group_reward_accuracy=best_method(rows, worst_accuracy),
    )  # fmt: skip


@task(name="compare-unseen-groups")
def compare_unseen_groups(
    seen: Sequence[ChildResult],
    unseen: Sequence[ChildResult],
    slugs: dict[str, str],
    split: str,
) -> UnseenGroups:
    """Per headline metric, how much each method loses on the group it never saw
    (:func:`dashboards.shaping.unseen_groups`), as a Prefect table artifact too."""
    from dashboards.shaping import json_records, result_values, unseen_groups

    values = result_values(
        [r.as_json() for r in (*seen, *unseen)], "held_out_group", "held_out_group"
    )
    tables = {
        metric: json_records(unseen_groups(values, split, metric, slugs))
        for metric in names.HEADLINE_METRICS
    }
    create_table_artifact(
        key="unseen-groups",
        table=[
            {k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}
            for row in tables["reward_accuracy"]
        ],
        description=f"Leave-one-group-out, {split}: each group's reward accuracy when trained with it "
        "(seen) and without it (unseen), mean and 95% interval over seeds; worse_unseen > 0: worse "
        "on the group the method never saw.",
    )
    return UnseenGroups(split=split, tables=tables)


def seed_summary(
    results: Sequence[dict[str, Any]], splits: Sequence[str], slugs: dict[str, str]
) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """Each method's results over its seeds, for the flow run's parent run.

    ``results``: ``{"method", "metrics": {eval keys}}`` per trained run. Returns the parent-run
    metrics (:func:`grpo_core.names.summary_key`: the mean of every headline aggregate per split,
    and ``lo``/``hi``, the bounds of its 95% Student-t interval, where two or more seeds give one)
    and the per-group rows (:data:`PER_GROUP_COLUMNS`; ``lo``/``hi`` None with one seed).
    """
    by_method: dict[str, list[dict[str, float]]] = defaultdict(list)
    for result in results:
        by_method[result["method"]].append(result["metrics"])
    metrics: dict[str, float] = {}
    rows: list[dict[str, Any]] = []
    for method, runs in by_method.items():
        for split in splits:
            for aggregate in names.HEADLINE:
                column = names.EvalKey(split, *names.split_aggregate(aggregate))  # type: ignore[misc]
                mean, half, n = t_interval(m.get(str(column)) for m in runs)
                if not n:
                    continue
                metrics[names.summary_key(method, split, aggregate, "mean")] = mean
                if math.isfinite(half):
                    metrics[names.summary_key(method, split, aggregate, "lo")] = mean - half
                    metrics[names.summary_key(method, split, aggregate, "hi")] = mean + half
            for slug, group in slugs.items():
                for metric in names.GROUP_METRICS:
                    key = names.eval_key(split, "group", metric, slug)
                    mean, half, n = t_interval(m.get(key) for m in runs)
                    if not n:
                        continue
                    bounds = (mean - half, mean + half) if math.isfinite(half) else (None, None)
                    values = (method, split, group, metric, mean, *bounds, n)
                    rows.append(dict(zip(PER_GROUP_COLUMNS, values, strict=True)))
    return metrics, rows


@task(name="summarize-seeds")
def summarize_seeds(
    parent: ParentRun, results: Sequence[ChildResult], slugs: dict[str, str], splits: Sequence[str]
) -> None:
    """Log each method's headline metrics over seeds on the parent run (two flow runs then compare
    in MLflow's compare view on their parent runs alone), and the per-group table over seeds as its
    artifact :data:`grpo_core.names.PER_GROUP_SUMMARY`."""
    metrics, rows = seed_summary([r.as_json() for r in results], splits, slugs)
    client = tracking.client()
    tracking.log_metrics(client, parent.run_id, metrics)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / names.PER_GROUP_SUMMARY
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=PER_GROUP_COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
        client.log_artifact(parent.run_id, str(path))
