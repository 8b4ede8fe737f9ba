"""MLflow run tables -> the tables the figures draw. Pure pandas: no MLflow, no plotting.

The input is a :class:`RunTables`: one row per run (tags made columns), the latest value of every
metric, and the step history of the few metrics drawn over time. :mod:`dashboards.mlflow_source`
reads it from MLflow; tests write it by hand. Metric keys follow the pipeline's layout, e.g.
``eval/<split>/group/<slug>/<metric>``, ``eval/<split>/worst_group/<metric>``,
``train/group_weight/<slug>``, ``synthetic/max_reward_error/mean``.

Intervals are two-sided 95% Student-t intervals over seeds: mean +- t_{0.975, n-1} * s / sqrt(n).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
from scipy import stats

from grpo_core.evaluation import HIGHER_IS_BETTER
from grpo_core.methods import METHODS

RUN_COLUMNS = (
    "run_id",
    "parent_run_id",
    "run_type",
    "run_name",
    "status",
    "start_time",
    "end_time",
    "method",
    "seed",
    "dataset",
    "setting",
    "feature_type",
    "solver",
    "seeds",
    "model_uri",
    "flow_run_id",
    "flow_run_name",
    "flow_run_url",
    "git_commit",
    "group_slugs",
)
"""Columns of ``RunTables.runs``; tags ``grpo.<x>`` become column ``<x>``."""

HISTORY_PREFIXES = (
    "train/group_loss/",
    "train/group_weight/",
    "eval/validation/worst_group/",
    "eval/validation/average/",
    "synthetic/worst_val_group_loss",
)
"""The metrics whose step history is read (everything else is read as its latest value)."""

SUMMARY_KEYS = (
    "worst_group/loss",
    "average/loss",
    "imbalance/loss",
    "worst_group/reward_accuracy",
    "average/reward_accuracy",
    "gap/reward_accuracy",
)
"""``<scope>/<metric>`` of the comparison table across seeds."""

GROUP_METRICS = (
    "loss",
    "reward_accuracy",
    "logprob_accuracy",
    "reward_margin",
    "chosen_reward",
    "rejected_reward",
    "count",
)
SETTINGS = ("even-imbalanced", "uneven-balanced", "uneven-imbalanced")
FAMILIES = {"dpo": "DPO family", "ipo": "IPO family"}
SCOPE_LABELS = {
    "worst_group": "worst-group",
    "average": "average",
    "imbalance": "imbalance (max-min)",
    "gap": "gap (best-worst)",
}


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


# Statistics ---------------------------------------------------------------------------------------


def t_interval(values: Iterable[float]) -> tuple[float, float, int]:
    """Mean, half-width of the 95% Student-t interval, and the number of finite values.

    The half-width is ``t_{0.975, n-1} * s / sqrt(n)`` with the sample standard deviation ``s``;
    NaN for fewer than two values (one seed says nothing about the noise).
    """
    x = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    n = len(x)
    if n == 0:
        return math.nan, math.nan, 0
    if n == 1:
        return float(x[0]), math.nan, 1
    half = stats.t.ppf(0.975, n - 1) * x.std(ddof=1) / math.sqrt(n)
    return float(x.mean()), float(half), n


def welch_interval(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """Difference of means ``mean(a) - mean(b)`` and the half-width of its 95% Welch interval."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    diff = float(a.mean() - b.mean()) if len(a) and len(b) else math.nan
    if len(a) < 2 or len(b) < 2:
        return diff, math.nan
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    if va + vb == 0:
        return diff, 0.0
    dof = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    return diff, float(stats.t.ppf(0.975, dof) * math.sqrt(va + vb))


def direction(scope: str, metric: str) -> bool | None:
    """Whether higher is better for ``<scope>/<metric>`` (None: no direction, e.g. chosen_reward).

    Spreads between groups (``imbalance``, ``gap``) are better small; the rest comes from the
    metric's own direction in :data:`grpo_core.evaluation.HIGHER_IS_BETTER`.
    """
    if scope in ("imbalance", "gap"):
        return False
    return HIGHER_IS_BETTER.get(metric)


def key_label(key: str) -> str:
    """``worst_group/loss`` -> ``worst-group loss``."""
    scope, _, metric = key.partition("/")
    return f"{SCOPE_LABELS.get(scope, scope)} {metric.replace('_', ' ')}"


def method_rank(method: object) -> tuple[int, str]:
    """Sort key: the six methods in their canonical order, anything else after, alphabetically."""
    text = str(method)
    return (METHODS.index(text) if text in METHODS else len(METHODS), text)


def ordered(values: Iterable[object]) -> list:
    """Distinct values in :func:`method_rank` order."""
    return sorted(set(values), key=method_rank)


def _sort(frame: pd.DataFrame, **orders: Sequence[object]) -> pd.DataFrame:
    """``frame`` sorted by each named column in the given order of values (unlisted values last)."""
    ranks = {
        f"_rank_{column}": frame[column].map({v: i for i, v in enumerate(order)}).fillna(len(order))
        for column, order in orders.items()
    }
    return frame.assign(**ranks).sort_values(list(ranks), kind="stable").drop(columns=list(ranks))


# Selection ----------------------------------------------------------------------------------------


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


# Final evaluation ---------------------------------------------------------------------------------


def parse_eval_key(key: str) -> tuple[str, str, str, str] | None:
    """``eval/<split>/group/<slug>/<m>`` -> ``(split, "group", slug, m)``;
    ``eval/<split>/<scope>/<m>`` -> ``(split, scope, "", m)``; anything else -> None."""
    parts = key.split("/")
    if len(parts) < 4 or parts[0] != "eval":
        return None
    if parts[2] == "group":
        return (parts[1], "group", parts[3], parts[4]) if len(parts) == 5 else None
    return (parts[1], parts[2], "", parts[3]) if len(parts) == 4 else None


FINAL_COLUMNS = ["run_id", "method", "label", "seed", "split", "scope", "group", "metric", "value"]


def final_metrics(tables: RunTables) -> pd.DataFrame:
    """The latest ``eval/...`` values of every run, one row each: :data:`FINAL_COLUMNS`.

    ``label`` is the method, or the run name for runs without one (e.g. evaluation runs).
    """
    rows = []
    for run_id, key, value in tables.latest[["run_id", "key", "value"]].itertuples(index=False):
        parsed = parse_eval_key(key)
        if parsed is not None:
            rows.append((run_id, *parsed, value))
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
        mean, half, n = t_interval(part["value"])
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
    table = _sort(pd.DataFrame(out), method=ordered(r["method"] for r in out), group=list(groups))
    higher = HIGHER_IS_BETTER.get(metric)
    table["is_worst"] = False
    if higher is not None:
        for _, part in table.groupby("method", sort=False):
            values = part["mean"].dropna()
            if not values.empty:
                table.loc[values.idxmax() if not higher else values.idxmin(), "is_worst"] = True
    return table[columns].reset_index(drop=True)


def seed_summary(
    final: pd.DataFrame, split: str, keys: Sequence[str] = SUMMARY_KEYS
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
            mean, half, n = t_interval(values)
            scope, _, metric = key.partition("/")
            out.append(
                {
                    "method": method,
                    "key": key,
                    "label": key_label(key),
                    "mean": mean,
                    "ci95": half,
                    "low": mean - half,
                    "high": mean + half,
                    "n": n,
                    "higher_is_better": direction(scope, metric),
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
        [key_label(k) for k in SUMMARY_KEYS if key_label(k) in wide.columns]
        + [c for c in wide.columns if c not in map(key_label, SUMMARY_KEYS)]
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
    key: str = "worst_group/loss",
    pairs: Sequence[tuple[str, str]] | None = None,
) -> pd.DataFrame:
    """``method - baseline`` on ``key`` with a 95% interval.

    Paired over seeds when both methods share at least two seeds (a t interval on the per-seed
    differences: the seed fixes the data order and initial state, so pairing removes that noise);
    otherwise Welch's interval on the two sets of seeds. ``verdict`` reads the interval with the
    metric's direction: which method is better, or ``no clear difference`` when it covers 0.
    """
    scope, _, metric = key.partition("/")
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
            diff, half, n = t_interval(va.loc[common] - vb.loc[common])
            paired, count = True, str(n)
        else:
            diff, half = welch_interval(va.to_list(), vb.to_list())
            paired, count = False, f"{len(va)}/{len(vb)}"
        out.append(
            {
                "method": a,
                "baseline": b,
                "key": key,
                "label": key_label(key),
                "difference": diff,
                "ci95": half,
                "low": diff - half,
                "high": diff + half,
                "n": count,
                "paired": paired,
                "verdict": _verdict(a, b, diff, half, direction(scope, metric)),
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


# Over training ------------------------------------------------------------------------------------


CURVE_COLUMNS = ["run_id", "method", "seed", "series", "step", "value"]
SMOOTHING_POINTS = 25


def training_curves(tables: RunTables, metric: str = "loss") -> tuple[pd.DataFrame, str]:
    """Worst-group and average ``metric`` of every train run over optimizer steps.

    Uses the periodic validation (``eval/validation/{worst_group,average}/<metric>``) when some run
    has it at two or more steps; otherwise, for the loss, the training batches' group losses
    (worst by the metric's direction, and their unweighted mean).

    Returns:
        (curves, source): curves with :data:`CURVE_COLUMNS` (``series`` is ``worst group`` or
        ``average``); source ``"validation"``, ``"training batches"`` (with the rolling-mean
        window when the runs are long: about :data:`SMOOTHING_POINTS` windows per run) or ``""``.
    """
    history = _train_history(tables)
    keys = {
        f"eval/validation/worst_group/{metric}": "worst group",
        f"eval/validation/average/{metric}": "average",
    }
    validation = history[history["key"].isin(keys)]
    if not validation.empty and validation.groupby("run_id")["step"].nunique().max() >= 2:
        curves = validation.assign(series=validation["key"].map(keys))
        return curves[CURVE_COLUMNS].reset_index(drop=True), "validation"
    prefix = f"train/group_{metric}/"
    batches = history[history["key"].str.startswith(prefix)]
    higher = HIGHER_IS_BETTER.get(metric)
    if batches.empty or higher is None:
        return pd.DataFrame(columns=CURVE_COLUMNS), ""
    grouped = batches.groupby(["run_id", "method", "seed", "step"])["value"]
    worst = (grouped.max() if not higher else grouped.min()).rename("worst group")
    average = grouped.mean().rename("average")
    long = pd.concat([worst, average], axis=1).reset_index()
    long = long.melt(
        id_vars=["run_id", "method", "seed", "step"], var_name="series", value_name="value"
    )
    long = long[CURVE_COLUMNS].sort_values(["run_id", "series", "step"]).reset_index(drop=True)
    window = max(
        1, round(long.groupby(["run_id", "series"])["step"].size().max() / SMOOTHING_POINTS)
    )
    if window > 1:  # one batch's group estimates are noisy (0 for a group absent from the batch)
        rolling = long.groupby(["run_id", "series"])["value"].rolling(window, min_periods=1).mean()
        long["value"] = rolling.reset_index(level=[0, 1], drop=True)
        return long, f"training batches, rolling mean of {window} steps"
    return long, "training batches"


def _train_history(tables: RunTables, robust_only: bool = False) -> pd.DataFrame:
    """The history of the train runs with their method and seed, one value per (run, key, step):
    the last logged (the final evaluation may repeat the last periodic validation's step)."""
    info = tables.runs.loc[tables.runs["run_type"] == "train", ["run_id", "method", "seed"]]
    if robust_only:
        info = info[info["method"].astype(str).str.startswith("gr_")]
    history = tables.history.drop_duplicates(["run_id", "key", "step"], keep="last")
    return history.merge(info, on="run_id", how="inner")


def across_seeds(frame: pd.DataFrame, by: Sequence[str]) -> pd.DataFrame:
    """Mean, 95% interval bounds and count of ``value`` per ``by`` (vectorised :func:`t_interval`)."""
    columns = [*by, "mean", "low", "high", "n"]
    if frame.empty:
        return pd.DataFrame(columns=columns)
    stats_ = (
        frame.groupby(list(by), sort=True, dropna=False)["value"]
        .agg(["mean", "std", "count"])
        .reset_index()
    )
    dof = (stats_["count"] - 1).clip(lower=1)
    half = stats.t.ppf(0.975, dof) * stats_["std"] / np.sqrt(stats_["count"])
    half = half.where(stats_["count"] >= 2)
    out = stats_.assign(low=stats_["mean"] - half, high=stats_["mean"] + half, n=stats_["count"])
    return out[columns]


def curve_summary(curves: pd.DataFrame) -> pd.DataFrame:
    """Per method, series and step: mean over seeds with its 95% interval (``low``/``high``)."""
    return across_seeds(curves, ["method", "series", "step"])


def group_weights(tables: RunTables, robust_only: bool = True) -> pd.DataFrame:
    """Group weights over steps, mean over seeds: ``method, group, group_name, step, mean, low, high, n``.

    ``robust_only`` keeps the gr_* methods, whose weights move; the others are constant.
    """
    history = _train_history(tables, robust_only)
    weights = history[history["key"].str.startswith("train/group_weight/")]
    weights = weights.assign(group=weights["key"].str.removeprefix("train/group_weight/"))
    summary = across_seeds(weights, ["method", "group", "step"])
    summary.insert(
        2, "group_name", summary["group"].map(lambda slug: tables.groups.get(slug, slug))
    )
    return summary


def thin(frame: pd.DataFrame, by: Sequence[str], max_points: int = 400) -> pd.DataFrame:
    """At most about ``max_points`` evenly spaced rows per ``by`` line (first and last kept), for plotting."""
    if frame.empty:
        return frame
    frame = frame.sort_values([*by, "step"])
    grouped = frame.groupby(list(by), sort=False, dropna=False)
    position = grouped.cumcount()
    size = grouped["step"].transform("size")
    stride = np.ceil(size / max_points).astype(int).clip(lower=1)
    return frame[(position % stride == 0) | (position == size - 1)].reset_index(drop=True)


# Synthetic benchmark ------------------------------------------------------------------------------


def _family(method: object) -> str:
    text = str(method)
    return FAMILIES["ipo"] if text.endswith("ipo") else FAMILIES["dpo"]


def _synthetic_runs(tables: RunTables) -> pd.DataFrame:
    """The synthetic_method runs, the latest one per (setting, method)."""
    runs = tables.runs[tables.runs["run_type"] == "synthetic_method"]
    runs = runs.sort_values("start_time", na_position="first").drop_duplicates(
        ["setting", "method"], keep="last"
    )
    return runs.assign(family=runs["method"].map(_family))


def _setting_rank(setting: object) -> tuple[int, str]:
    return (SETTINGS.index(setting) if setting in SETTINGS else len(SETTINGS), str(setting))


def synthetic_summary(tables: RunTables) -> pd.DataFrame:
    """Per (setting, method): max validation group loss and max reward error (mean, ci95 over seeds)
    and the final group weights, from the ``synthetic/...`` metrics."""
    runs = _synthetic_runs(tables)
    columns = [
        "setting",
        "family",
        "method",
        "max_val_group_loss",
        "max_val_group_loss_ci95",
        "max_reward_error",
        "max_reward_error_ci95",
        "weight_group_0",
        "weight_group_1",
        "seeds",
    ]
    if runs.empty:
        return pd.DataFrame(columns=columns)
    latest = tables.latest.pivot_table(
        index="run_id", columns="key", values="value", aggfunc="last"
    )
    names = {
        "synthetic/max_val_group_loss/mean": "max_val_group_loss",
        "synthetic/max_val_group_loss/ci95": "max_val_group_loss_ci95",
        "synthetic/max_reward_error/mean": "max_reward_error",
        "synthetic/max_reward_error/ci95": "max_reward_error_ci95",
        "synthetic/group_weight/group-0": "weight_group_0",
        "synthetic/group_weight/group-1": "weight_group_1",
    }
    values = latest.reindex(columns=list(names)).rename(columns=names)
    table = runs[["run_id", "setting", "family", "method", "seeds"]].merge(
        values, left_on="run_id", right_index=True, how="left"
    )
    table = _sort(table, setting=settings_of(table), method=ordered(table["method"]))
    return table[columns].reset_index(drop=True)


def synthetic_curves(tables: RunTables, max_points: int = 400) -> pd.DataFrame:
    """Worst-group validation loss over iterations: ``setting, family, method, step, value`` (thinned)."""
    runs = _synthetic_runs(tables)[["run_id", "setting", "family", "method"]]
    history = tables.history[tables.history["key"] == "synthetic/worst_val_group_loss"]
    curves = history.merge(runs, on="run_id", how="inner")[
        ["setting", "family", "method", "step", "value"]
    ]
    return thin(curves, ["setting", "method"], max_points)


def settings_of(frame: pd.DataFrame) -> list[str]:
    return sorted(set(frame["setting"].dropna()), key=_setting_rank)


# Evaluation runs ----------------------------------------------------------------------------------


def evaluation_table(tables: RunTables, split: str = "test") -> pd.DataFrame:
    """One row per evaluation run, latest first: when, model, dataset and the split's aggregates."""
    runs = tables.runs[tables.runs["run_type"] == "evaluation"].sort_values(
        "start_time", ascending=False
    )
    final = final_metrics(tables.select(runs["run_id"]))
    final = final[(final["split"] == split) & (final["scope"] != "group")]
    wide = final.assign(label=final["scope"].str.cat(final["metric"], sep="/").map(key_label))
    wide = wide.pivot_table(index="run_id", columns="label", values="value", aggfunc="last")
    columns = [key_label(k) for k in SUMMARY_KEYS if key_label(k) in wide.columns]
    info = runs[["run_id", "start_time", "status", "model_uri", "dataset"]]
    return info.merge(wide[columns], left_on="run_id", right_index=True, how="left").reset_index(
        drop=True
    )


def status_notes(tables: RunTables) -> list[str]:
    """Plain-language notes on what is missing or unfinished among the train runs."""
    train = tables.runs[tables.runs["run_type"] == "train"]
    notes = []
    running = train[train["status"].isin(["RUNNING", "SCHEDULED"])]
    if len(running):
        notes.append(
            f"{_runs_text(len(running), len(train), 'is', 'are')} still in progress: their values are the latest logged."
        )
    failed = train[train["status"].isin(["FAILED", "KILLED"])]
    if len(failed):
        notes.append(
            f"{_runs_text(len(failed), len(train), '', '')} failed or stopped: "
            + ", ".join(_run_names(failed))
            + "."
        )
    evaluated = set(tables.latest.loc[tables.latest["key"].str.startswith("eval/"), "run_id"])
    unevaluated = train[~train["run_id"].isin(evaluated)]
    if len(unevaluated):
        notes.append(
            f"{_runs_text(len(unevaluated), len(train), 'has', 'have')} no evaluation metrics yet: "
            + ", ".join(_run_names(unevaluated))
            + "."
        )
    return notes


def _runs_text(count: int, total: int, singular: str, plural: str) -> str:
    """``1 of 4 training runs is`` / ``2 of 4 training runs are``: the verb agrees with ``count``."""
    verb = singular if count == 1 else plural
    return f"{count} of {total} training runs {verb}".rstrip()


def _run_names(runs: pd.DataFrame) -> list[str]:
    return [
        f"{m} seed {s}" if pd.notna(m) else str(n)
        for m, s, n in zip(runs["method"], runs["seed"], runs["run_name"], strict=True)
    ]


def synthetic_table(summary: pd.DataFrame, digits: int = 3) -> pd.DataFrame:
    """:func:`synthetic_summary` for people: ``mean ± half-width`` and the final weights side by side."""
    return pd.DataFrame(
        {
            "setting": summary["setting"],
            "method": summary["method"],
            "worst-group val. loss": [
                plus_minus(m, h, digits)
                for m, h in zip(
                    summary["max_val_group_loss"], summary["max_val_group_loss_ci95"], strict=True
                )
            ],
            "max reward error": [
                plus_minus(m, h, digits)
                for m, h in zip(
                    summary["max_reward_error"], summary["max_reward_error_ci95"], strict=True
                )
            ],
            "final weights (group 0 / 1)": [
                f"{a:.2f} / {b:.2f}" if pd.notna(a) and pd.notna(b) else ""
                for a, b in zip(summary["weight_group_0"], summary["weight_group_1"], strict=True)
            ],
            "seeds": summary["seeds"],
        }
    )
