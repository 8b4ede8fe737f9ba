"""Draws a :class:`~dashboards.figure_spec.FigureSpec` with matplotlib: the report's static PNGs.

Figures are built with :class:`matplotlib.figure.Figure` directly (no pyplot, no global backend).
"""

from __future__ import annotations

import math
import textwrap

import numpy as np
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from dashboards.figure_spec import (
    WORST_LEGEND,
    WORST_TEXT,
    Bars,
    FigureSpec,
    Line,
    Panel,
    Points,
    Scatter,
)
from dashboards.style import WORST_COLOR

PIXELS_PER_INCH = 100
CHARACTERS_PER_INCH = 11
"""About how many title characters fit in an inch at the titles' font size."""
BAND_ALPHA = 0.15
ERROR_STYLE = {"fmt": "none", "ecolor": "#333", "elinewidth": 1, "capsize": 3}
LEGENDS = {"below": "outside lower center", "right": "outside right upper"}


def to_matplotlib(spec: FigureSpec) -> Figure:
    """The matplotlib figure of ``spec``: one axes per panel, one legend for the figure."""
    bars = [[s for s in p.series if isinstance(s, Bars)] for *_, p in spec.cells()]
    widest = max(sum(len(s.x) for s in panel) for panel in bars)  # bars in one panel
    width = max(6.0, 5.0 * spec.cols, 0.7 * widest + 3)
    fig = Figure(figsize=(width, spec.height / PIXELS_PER_INCH), layout="constrained")
    sharey = "row" if spec.shared_y else False
    axes = fig.subplots(spec.rows, spec.cols, sharey=sharey, squeeze=False)
    handles: dict[str, Artist] = {}
    for r, c, panel in spec.cells():
        for name, handle in _panel(axes[r, c], panel).items():
            handles.setdefault(name, handle)
    if any(any(s.highlight or ()) for panel in bars for s in panel):
        handles[WORST_LEGEND] = Patch(
            facecolor="white", edgecolor=WORST_COLOR, hatch="//", linewidth=2
        )
    if handles:
        below = spec.legend == "below"
        fig.legend(
            list(handles.values()),
            list(handles),
            loc=LEGENDS[spec.legend],
            ncols=_legend_columns(list(handles), width) if below else 1,
            fontsize=9,
            frameon=False,
        )
    columns = int(width * CHARACTERS_PER_INCH)  # wrap titles to the figure's width
    lines = [textwrap.fill(text, columns) for text in (spec.title, spec.subtitle) if text]
    fig.suptitle("\n".join(lines), fontsize=11)
    return fig


def _legend_columns(names: list[str], width: float) -> int:
    """As many legend entries per row as fit the figure's width (at most 6)."""
    room = width * CHARACTERS_PER_INCH * 1.2  # legend text is smaller than the title's
    entry = max(len(name) for name in names) + 6  # the marker and the gap
    return max(1, min(len(names), 6, int(room // entry)))


def _panel(ax: Axes, panel: Panel) -> dict[str, Artist]:
    """Draw the panel's series; return the legend handles of those listed in the legend."""
    handles: dict[str, Artist] = {}
    bars = [s for s in panel.series if isinstance(s, Bars)]
    if bars:
        handles |= _bars(ax, bars)
    for series in panel.series:
        if isinstance(series, Line):
            handles[series.name] = _line(ax, series)
        elif isinstance(series, Scatter):
            handles[series.name] = _scatter(ax, series)
        elif isinstance(series, Points):
            _points(ax, series)
    ax.set_title(panel.title, fontsize=10)
    ax.set_xlabel(panel.x_title)
    ax.set_ylabel(panel.y_title)
    ax.grid(axis="y" if bars else "both", alpha=0.3)
    if panel.y_from_zero:
        ax.set_ylim(bottom=0)
    if panel.x_reference is not None:
        ax.axvline(panel.x_reference, color="#888", linestyle="--", linewidth=1)
    listed = {s.name for s in panel.series if s.legend}
    return {name: handle for name, handle in handles.items() if name in listed}


def _bars(ax: Axes, bars: list[Bars]) -> dict[str, Artist]:
    """Side-by-side bars per category with error caps; highlighted bars hatched in red and marked."""
    categories = list(dict.fromkeys(x for s in bars for x in s.x))
    width = 0.8 / len(bars)
    handles = {}
    for i, series in enumerate(bars):
        positions = np.array([categories.index(x) for x in series.x]) - 0.4 + width * (i + 0.5)
        values = np.array(series.y, dtype=float)
        handles[series.name] = ax.bar(
            positions, values, width * 0.95, color=list(series.colors or ()) or series.color
        )
        halves = np.array(series.error if series.error is not None else [0.0] * len(values))
        known = halves > 0
        if known.any():
            ax.errorbar(positions[known], values[known], yerr=halves[known], **ERROR_STYLE)
        for position, value, half, flag in zip(
            positions, values, halves, series.highlight or [False] * len(values), strict=True
        ):
            if flag and math.isfinite(value):
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
                    WORST_TEXT,
                    (position, max(value + half, 0.0)),
                    xytext=(0, 3),
                    textcoords="offset points",
                    ha="center",
                    va="bottom",
                    fontsize=8,
                    color=WORST_COLOR,
                    fontweight="bold",
                )
    ax.set_xticks(range(len(categories)), [textwrap.fill(str(c), 18) for c in categories])
    return handles


def _line(ax: Axes, line: Line) -> Artist:
    if line.low is not None and line.high is not None:
        ax.fill_between(
            line.x, line.low, line.high, color=line.color, alpha=BAND_ALPHA, linewidth=0
        )
    (handle,) = ax.plot(
        line.x,
        line.y,
        color=line.color,
        linewidth=line.width * 0.75,
        marker="o" if line.markers else None,
        markersize=3,
    )
    return handle


def _scatter(ax: Axes, scatter: Scatter) -> Artist:
    """Markers with x and y error bars, larger where emphasised, labelled beside each point."""
    big = scatter.emphasis or (False,) * len(scatter.x)
    ax.errorbar(
        scatter.x,
        scatter.y,
        xerr=None if scatter.x_error is None else list(scatter.x_error),
        yerr=None if scatter.y_error is None else list(scatter.y_error),
        fmt="none",
        ecolor=scatter.color,
        elinewidth=1,
        capsize=3,
    )
    sizes = [64 if b else 25 for b in big]
    handle = ax.scatter(scatter.x, scatter.y, s=sizes, color=scatter.color, zorder=3)
    for x, y, text in zip(scatter.x, scatter.y, scatter.labels or (), strict=False):
        ax.annotate(text, (x, y), xytext=(6, 4), textcoords="offset points", fontsize=9)
    return handle


def _points(ax: Axes, points: Points) -> None:
    """One row per label, top to bottom, with horizontal error caps."""
    rows = np.arange(len(points.y))
    ax.errorbar(
        points.x,
        rows,
        xerr=None if points.error is None else list(points.error),
        fmt="o",
        color=points.color,
        markersize=6,
        **{k: v for k, v in ERROR_STYLE.items() if k != "fmt"},
    )
    if len(rows):
        ax.set_yticks(rows, list(points.y))
        ax.set_ylim(len(rows) - 0.5, -0.5)
