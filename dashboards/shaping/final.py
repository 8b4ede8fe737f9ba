"""Final evaluation across runs: per-group bars, summaries over seeds, and gaps between methods.

Intervals are two-sided 95% Student-t intervals over seeds (:mod:`grpo_core.stats`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import pandas as pd

from dashboards.shaping.order import FAMILIES, ordered, sort_by
from dashboards.shaping.tables import RunTables
from grpo_core import names, stats

FINAL_COLUMNS = ["run_id", "method", "label", "seed", "split", "scope", "group", "metric", "value"]


def final_metrics(tables: RunTables) -> pd.DataFrame:
    """The latest ``eval/...`` values of every run, one row each: :data:`FINAL_COLUMNS`.

    ``label`` is the method, or the run name for runs without one (e.g. evaluation runs).
    """
    rows = []
    for run_id, key, value in tables.latest[["run_id", "key", "value"]].itertuples(index=False):
        parsed = names.EvalKey.parse(key)
        if parsed is not None and parsed.root == names.EVAL:
            rows.append((run_id, parsed.split, parsed.scope, parsed.group, parsed.metric, value))
    parsed = pd.DataFrame(rows, columns=["run_id", "split", "scope", "group", "metric", "value"])
    info = tables.runs[["run_id", "method", "seed", "run_name"]]
    out = parsed.merge(info, on="run_id", how="inner")
    out["label"] = out["method"].where(out["method"].notna(), out["run_name"])
    return out[FINAL_COLUMNS].reset_index(drop=True)


def group_bars(
    final: pd.DataFrame, split: str, metric: str, groups: Mapping[str, str], by: str = "method"
) -> pd.DataFrame:
    """Per-group ``metric`` per method: mean over seeds, 95% interval, and the worst group marked.

    Returns:
        ``method, group, group_name, mean, ci95, n, is_worst``; the worst group of each method is the
        one with the worst MEAN (max for losses, min for accuracies, by the metric's direction); a
        metric without a direction marks none.
    """
    rows = final[
        (final["split"] == split) & (final["scope"] == "group") & (final["metric"] == metric)
    ]
    columns = ["method", "group", "group_name", "mean", "ci95", "n", "is_worst"]
    if rows.empty:
        return pd.DataFrame(columns=columns)
    out = []
    for (method, slug), part in rows.groupby([by, "group"], sort=False):
        mean, half, n = stats.t_interval(part["value"])
        out.append(
            {
                "method": method,
                "group": slug,
                "group_name": groups.get(slug, slug),
                "mean": mean,
                "ci95": half,
                "n": n,
            }
        )
    table = sort_by(pd.DataFrame(out), method=ordered(r["method"] for r in out), group=list(groups))
    higher = names.HIGHER_IS_BETTER.get(metric)
    table["is_worst"] = False
    if higher is not None:
        for _, part in table.groupby("method", sort=False):
            values = part["mean"].dropna()
            if not values.empty:
                table.loc[values.idxmax() if not higher else values.idxmin(), "is_worst"] = True
    return table[columns].reset_index(drop=True)


def seed_summary(
    final: pd.DataFrame, split: str, keys: Sequence[str] = names.SUMMARY
) -> pd.DataFrame:
    """Mean and 95% interval over seeds of aggregate metrics, per method.

    Returns:
        ``method, key, label, mean, ci95, low, high, n, higher_is_better``, one row per
        (method, key) present, ``key`` as ``<scope>/<metric>``.
    """
    rows = final[(final["split"] == split) & (final["scope"] != "group")]
    rows = rows.assign(key=rows["scope"] + "/" + rows["metric"])
    rows = rows[rows["key"].isin(keys)]
    out = []
    for method in ordered(rows["method"].dropna()):
        for key in keys:
            values = rows[(rows["method"] == method) & (rows["key"] == key)]["value"]
            if values.empty:
                continue
            mean, half, n = stats.t_interval(values)
            scope, metric = names.split_aggregate(key)
            out.append(
                {
                    "method": method,
                    "key": key,
                    "label": names.label(key),
                    "mean": mean,
                    "ci95": half,
                    "low": mean - half,
                    "high": mean + half,
                    "n": n,
                    "higher_is_better": names.direction(scope, metric),
                }
            )
    return pd.DataFrame(
        out,
        columns=["method", "key", "label", "mean", "ci95", "low", "high", "n", "higher_is_better"],
    )


def summary_table(summary: pd.DataFrame, digits: int = 3) -> pd.DataFrame:
    """The comparison table for people: one row per method, ``mean ± half-width`` per metric, seeds."""
    if summary.empty:
        return pd.DataFrame()
    table = summary.assign(
        text=[
            plus_minus(m, h, digits) for m, h in zip(summary["mean"], summary["ci95"], strict=True)
        ]
    )
    wide = table.pivot(index="method", columns="label", values="text")
    wide = wide[
        [names.label(k) for k in names.SUMMARY if names.label(k) in wide.columns]
        + [c for c in wide.columns if c not in map(names.label, names.SUMMARY)]
    ]
    wide.insert(0, "seeds", summary.groupby("method")["n"].max())
    wide = wide.loc[ordered(wide.index)]
    wide.columns.name = None
    return wide.reset_index()


def plus_minus(mean: float, half: float, digits: int = 3) -> str:
    """``0.512 ± 0.030`` (just the mean when the half-width is unknown; empty for NaN)."""
    if not math.isfinite(mean):
        return ""
    return (
        f"{mean:.{digits}f}"
        if not math.isfinite(half)
        else f"{mean:.{digits}f} ± {half:.{digits}f}"
    )


def default_pairs(methods: Iterable[str]) -> list[tuple[str, str]]:
    """Comparisons to show, per family present: gr_x - x, gr_x - is_x, is_x - x."""
    present = set(methods)
    pairs = []
    for family in FAMILIES:
        plain, weighted, robust = family, f"is_{family}", f"gr_{family}"
        for a, b in ((robust, plain), (robust, weighted), (weighted, plain)):
            if a in present and b in present:
                pairs.append((a, b))
    return pairs


GAP_COLUMNS = [
    "method",
    "baseline",
    "key",
    "label",
    "difference",
    "ci95",
    "low",
    "high",
    "n",
    "paired",
    "verdict",
]


def method_gaps(
    final: pd.DataFrame,
    split: str,
    key: str = names.SUMMARY[0],
    pairs: Sequence[tuple[str, str]] | None = None,
) -> pd.DataFrame:
    """``method - baseline`` on ``key`` with a 95% interval.

    Paired over seeds when both methods share at least two seeds (a t interval on the per-seed
    differences: the seed fixes the data order and initial state, so pairing removes that noise);
    otherwise Welch's interval on the two sets of seeds. ``verdict`` reads the interval with the
    metric's direction: which method is better, or ``no clear difference`` when it covers 0.
    """
    scope, metric = names.split_aggregate(key)
    rows = final[
        (final["split"] == split) & (final["scope"] == scope) & (final["metric"] == metric)
    ]
    per_seed = rows.groupby(["method", "seed"])["value"].mean()
    methods = list(per_seed.index.get_level_values(0).unique())
    out = []
    for a, b in default_pairs(methods) if pairs is None else pairs:
        if a not in methods or b not in methods:
            continue
        va, vb = per_seed.loc[a], per_seed.loc[b]
        common = va.index.intersection(vb.index)
        if len(common) >= 2:
            diff, half, n = stats.t_interval(va.loc[common] - vb.loc[common])
            paired, count = True, str(n)
        else:
            diff, half = stats.welch_interval(va.to_list(), vb.to_list())
            paired, count = False, f"{len(va)}/{len(vb)}"
        out.append(
            {
                "method": a,
                "baseline": b,
                "key": key,
                "label": names.label(key),
                "difference": diff,
                "ci95": half,
                "low": diff - half,
                "high": diff + half,
                "n": count,
                "paired": paired,
                "verdict": _verdict(a, b, diff, half, names.direction(scope, metric)),
            }
        )
    return pd.DataFrame(out, columns=GAP_COLUMNS)


def _verdict(a: str, b: str, diff: float, half: float, higher: bool | None) -> str:
    if not math.isfinite(half):
        return "too few seeds"
    if higher is None:
        return "no direction"
    if abs(diff) <= half:
        return "no clear difference"
    return f"{a} better" if (diff > 0) == higher else f"{b} better"
