"""Metrics over training steps: worst-group and average curves, group weights, thinning for plots."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from dashboards.shaping.tables import RunTables
from grpo_core import names, stats
from grpo_core.methods import METHODS, is_group_robust

CURVE_COLUMNS = ["run_id", "method", "seed", "series", "step", "value"]
SMOOTHING_POINTS = 25


def training_curves(tables: RunTables, metric: str = "loss") -> tuple[pd.DataFrame, str]:
    """Worst-group and average ``metric`` of every train run over optimizer steps.

    Uses the periodic validation (its worst-group and average ``<metric>``) when some run
    has it at two or more steps; otherwise, for the loss, the training batches' group losses
    (worst by the metric's direction, and their unweighted mean).

    Returns:
        (curves, source): curves with :data:`CURVE_COLUMNS` (``series`` is ``worst group`` or
        ``average``); source ``"validation"``, ``"training batches"`` (with the rolling-mean
        window when the runs are long: about :data:`SMOOTHING_POINTS` windows per run) or ``""``.
    """
    history = _train_history(tables)
    keys = {
        names.eval_key("validation", "worst_group", metric): "worst group",
        names.eval_key("validation", "average", metric): "average",
    }
    validation = history[history["key"].isin(keys)]
    if not validation.empty and validation.groupby("run_id")["step"].nunique().max() >= 2:
        curves = validation.assign(series=validation["key"].map(keys))
        return curves[CURVE_COLUMNS].reset_index(drop=True), "validation"
    higher = names.HIGHER_IS_BETTER.get(metric)
    if metric != "loss":  # the training batches log only the group losses
        return pd.DataFrame(columns=CURVE_COLUMNS), ""
    batches = history[history["key"].str.startswith(names.train_group_prefix("group_loss"))]
    if batches.empty:
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
        info = info[info["method"].isin([m for m in METHODS if is_group_robust(m)])]
    history = tables.history.drop_duplicates(["run_id", "key", "step"], keep="last")
    return history.merge(info, on="run_id", how="inner")


def across_seeds(frame: pd.DataFrame, by: Sequence[str]) -> pd.DataFrame:
    """Mean, 95% interval bounds and count of ``value`` per ``by`` (:func:`grpo_core.stats.t_half_width`)."""
    columns = [*by, "mean", "low", "high", "n"]
    if frame.empty:
        return pd.DataFrame(columns=columns)
    summary = (
        frame.groupby(list(by), sort=True, dropna=False)["value"]
        .agg(["mean", "std", "count"])
        .reset_index()
    )
    half = stats.t_half_width(summary["std"].to_numpy(), summary["count"].to_numpy())
    out = summary.assign(
        low=summary["mean"] - half, high=summary["mean"] + half, n=summary["count"]
    )
    return out[columns]


def curve_summary(curves: pd.DataFrame) -> pd.DataFrame:
    """Per method, series and step: mean over seeds with its 95% interval (``low``/``high``)."""
    return across_seeds(curves, ["method", "series", "step"])


def group_weights(tables: RunTables, robust_only: bool = True) -> pd.DataFrame:
    """Group weights over steps, mean over seeds: ``method, group, group_name, step, mean, low, high, n``.

    ``robust_only`` keeps the gr_* methods, whose weights move; the others are constant.
    """
    history = _train_history(tables, robust_only)
    prefix = names.train_group_prefix("group_weight")
    weights = history[history["key"].str.startswith(prefix)]
    weights = weights.assign(group=weights["key"].str.removeprefix(prefix))
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
