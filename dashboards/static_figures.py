"""Static matplotlib versions of the dashboard's figures, for the report's PNGs.

Figures are built with :class:`matplotlib.figure.Figure` directly (no pyplot, no global backend).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from dashboards.shaping import FAMILIES, ordered, settings_of
from dashboards.style import WORST_COLOR, group_color, method_color, method_label, metric_label


def _errors(values: pd.Series) -> np.ndarray | None:
    """Error-bar half-widths (0 where unknown), or None when none is known (one seed: no caps)."""
    array = values.astype(float).to_numpy()
    return np.where(np.isfinite(array), array, 0.0) if np.isfinite(array).any() else None


def group_bar_figure(bars: pd.DataFrame, metric: str, split: str) -> Figure:
    """Grouped bars of ``metric`` per group and method with 95% intervals; worst groups hatched in red."""
    groups = list(dict.fromkeys(bars["group_name"]))
    methods = ordered(bars["method"])
    fig = Figure(
        figsize=(max(6.0, 1.4 * len(groups) * max(len(methods), 1) / 2 + 3), 4.2),
        layout="constrained",
    )
    ax = fig.subplots()
    width = 0.8 / max(len(methods), 1)
    x = np.arange(len(groups))
    for i, method in enumerate(methods):
        part = bars[bars["method"] == method].set_index("group_name").reindex(groups)
        positions = x - 0.4 + width * (i + 0.5)
        worst = part["is_worst"].fillna(False).astype(bool).to_numpy()
        means, halves = part["mean"].astype(float).to_numpy(), _errors(part["ci95"])
        ax.bar(
            positions,
            means,
            width * 0.95,
            yerr=halves,
            capsize=3,
            color=method_color(method, i),
            label=method_label(method),
            error_kw={"elinewidth": 1, "ecolor": "#333"},
        )
        tops = means + (halves if halves is not None else 0.0)
        for position, value, top, is_worst in zip(positions, means, tops, worst, strict=True):
            if is_worst and math.isfinite(value):
                ax.bar(
                    position,
                    value,
                    width * 0.95,
                    color="none",
                    edgecolor=WORST_COLOR,
                    hatch="//",
                    linewidth=2.5,
                )
                ax.annotate(
                    "worst",
                    (position, top),
                    xytext=(0, 3),
                    textcoords="offset points",
                    ha="center",
                    va="bottom",
                    fontsize=8,
                    color=WORST_COLOR,
                    fontweight="bold",
                )
    ax.set_xticks(x, groups)
    ax.set_xlabel("group")
    ax.set_ylabel(metric_label(metric))
    ax.set_title(
        f"{split.capitalize()} {metric_label(metric)} per group\nmean over seeds, 95% interval; red hatching: each method's worst group",
        fontsize=10,
    )
    handles, labels = ax.get_legend_handles_labels()
    handles.append(Patch(facecolor="white", edgecolor=WORST_COLOR, hatch="//", linewidth=2))
    labels.append("worst group")
    ax.legend(handles, labels, fontsize=8, loc="best")
    ax.grid(axis="y", alpha=0.3)
    return fig


def _band(ax, part: pd.DataFrame, color: str) -> None:
    if part["low"].notna().any():
        ax.fill_between(
            part["step"].astype(float),
            part["low"].astype(float),
            part["high"].astype(float),
            color=color,
            alpha=0.15,
            linewidth=0,
        )


def curves_figure(summary: pd.DataFrame, metric: str, source: str) -> Figure:
    """Worst-group and average ``metric`` over steps per method (mean over seeds, 95% band)."""
    fig = Figure(figsize=(11, 4), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    for i, method in enumerate(ordered(summary["method"])):
        color = method_color(method, i)
        for ax, series in zip(axes, ("worst group", "average"), strict=True):
            part = summary[
                (summary["method"] == method) & (summary["series"] == series)
            ].sort_values("step")
            if part.empty:
                continue
            _band(ax, part, color)
            ax.plot(
                part["step"],
                part["mean"],
                color=color,
                label=method_label(method),
                marker="o" if len(part) < 30 else None,
                markersize=3,
            )
    for ax, title in zip(axes, ("Worst group", "Average over groups"), strict=True):
        ax.set_title(title)
        ax.set_xlabel("optimizer step")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(metric_label(metric))
    axes[0].legend(fontsize=8)
    fig.suptitle(
        f"Worst-group and average {metric_label(metric)} over training ({source}); band: 95% interval",
        fontsize=11,
    )
    return fig


def weights_figure(weights: pd.DataFrame, groups: list[str]) -> Figure:
    """Group weights over steps, one panel per group-robust method, one line per group."""
    methods = ordered(weights["method"])
    fig = Figure(figsize=(max(8.0, 5.5 * len(methods)), 4), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, max(len(methods), 1), sharey=True))
    order = {slug: i for i, slug in enumerate(groups)}
    for ax, method in zip(axes, methods, strict=False):
        part = weights[weights["method"] == method]
        for slug in sorted(part["group"].unique(), key=lambda s: order.get(s, len(order))):
            line = part[part["group"] == slug].sort_values("step")
            color = group_color(order.get(slug, len(order)))
            _band(ax, line, color)
            ax.plot(line["step"], line["mean"], color=color, label=str(line["group_name"].iloc[0]))
        ax.set_title(method_label(method))
        ax.set_xlabel("optimizer step")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("group weight α")
    axes[0].legend(fontsize=8)
    fig.suptitle("Group weights (mean over seeds, band: 95% interval)", fontsize=11)
    return fig


def synthetic_figure(curves: pd.DataFrame, summary: pd.DataFrame) -> Figure:
    """Per setting: worst-group validation loss over iterations (DPO family, IPO family) and the max
    reward error per method with 95% intervals (the paper's synthetic layout)."""
    settings = settings_of(pd.concat([curves[["setting"]], summary[["setting"]]])) or [
        "(no setting)"
    ]
    fig = Figure(figsize=(15, 3.8 * len(settings)), layout="constrained")
    axes = np.atleast_2d(fig.subplots(len(settings), 3))
    for row, setting in zip(axes, settings, strict=True):
        for ax, key in zip(row[:2], ("dpo", "ipo"), strict=True):
            part = curves[(curves["setting"] == setting) & (curves["family"] == FAMILIES[key])]
            for method in ordered(part["method"]):
                line = part[part["method"] == method].sort_values("step")
                ax.plot(
                    line["step"],
                    line["value"],
                    color=method_color(method),
                    label=method_label(method),
                    linewidth=1.8,
                )
            ax.set_title(f"{setting} · {FAMILIES[key]}", fontsize=10)
            ax.set_xlabel("iteration")
            ax.set_ylabel("worst-group val. loss")
            ax.grid(alpha=0.3)
            if part.size:
                ax.legend(fontsize=8)
        bars = summary[summary["setting"] == setting]
        methods = ordered(bars["method"])
        bars = bars.set_index("method").reindex(methods)
        row[2].bar(
            [method_label(m) for m in methods],
            bars["max_reward_error"].astype(float),
            yerr=_errors(bars["max_reward_error_ci95"]),
            capsize=4,
            color=[method_color(m) for m in methods],
        )
        row[2].set_title(f"{setting} · max reward error", fontsize=10)
        row[2].set_ylabel("max reward error")
        row[2].grid(axis="y", alpha=0.3)
    fig.suptitle("Synthetic benchmark (mean over seeds; bars: 95% interval)", fontsize=12)
    return fig
