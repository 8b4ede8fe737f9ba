"""The figures of the dashboard and the report, each defined once as a
:class:`~dashboards.figure_spec.FigureSpec` drawn from the tables of :mod:`dashboards.shaping`.

The dashboard draws them with :func:`dashboards.render_plotly.to_plotly`, the report with
:func:`dashboards.render_matplotlib.to_matplotlib`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import pandas as pd

from dashboards.figure_spec import Bars, FigureSpec, Line, Panel, Points, Scatter
from dashboards.shaping import FAMILIES, ordered, plus_minus, settings_of
from dashboards.style import group_color, method_color, method_label
from grpo_core import names
from grpo_core.names import metric_label

BAND = "mean over seeds, band: 95% interval"


def _floats(values: Iterable[object]) -> tuple[float, ...]:
    return tuple(float(v) for v in values)


def _half_widths(values: pd.Series) -> tuple[float, ...] | None:
    """Error half-widths, 0 where unknown; None when none is known (e.g. a single seed)."""
    halves = _floats(values)
    if not any(math.isfinite(h) for h in halves):
        return None
    return tuple(h if math.isfinite(h) else 0.0 for h in halves)


def _band_line(part: pd.DataFrame, name: str, color: str, hover: str, **options) -> Line:
    """A line of ``mean`` over ``step`` with its ``low``/``high`` band (when any is known).

    ``hover`` is formatted per point with ``step`` and ``value``.
    """
    band = bool(part["low"].notna().any())
    return Line(
        name=name,
        x=_floats(part["step"]),
        y=_floats(part["mean"]),
        color=color,
        low=_floats(part["low"]) if band else None,
        high=_floats(part["high"]) if band else None,
        hover=tuple(
            hover.format(step=s, value=v) for s, v in zip(part["step"], part["mean"], strict=True)
        ),
        **options,
    )


def group_bar_figure(
    bars: pd.DataFrame, metric: str, split: str, subtitle: str | None = None
) -> FigureSpec:
    """Bars of ``metric`` per group (x) and method (colour) with 95% intervals; each method's worst
    group is highlighted (red outline, hatching and the label ``worst``).

    Args:
        bars: :func:`dashboards.shaping.group_bars` output.
        subtitle: the line under the title (default: how the bars and marks are computed).
    """
    series = []
    for i, method in enumerate(ordered(bars["method"])):
        part = bars[bars["method"] == method]
        series.append(
            Bars(
                name=method_label(method),
                x=tuple(str(g) for g in part["group_name"]),
                y=_floats(part["mean"]),
                color=method_color(method, i),
                error=_half_widths(part["ci95"]),
                highlight=tuple(bool(w) for w in part["is_worst"]),
                hover=tuple(
                    f"{g}\n{plus_minus(m, h, 4)} (n={n})"
                    for g, m, h, n in zip(
                        part["group_name"], part["mean"], part["ci95"], part["n"], strict=True
                    )
                ),
            )
        )
    label = metric_label(metric)
    return FigureSpec(
        title=f"{split.capitalize()} {label} per group",
        subtitle=subtitle
        or "mean over seeds, 95% interval; red outline and hatching: each method's worst group",
        panels=((Panel(series=tuple(series), x_title="group", y_title=label),),),
        height=460,
    )


def curves_figure(summary: pd.DataFrame, metric: str, source: str) -> FigureSpec:
    """Worst-group (left) and average (right) ``metric`` over steps per method, 95% band over seeds.

    Args:
        summary: :func:`dashboards.shaping.curve_summary` output.
        source: ``validation`` or ``training batches`` (said in the subtitle).
    """
    label = metric_label(metric)
    methods = ordered(summary["method"])
    panels, shown = [], set()
    for kind, title in (("worst group", "Worst group"), ("average", "Average over groups")):
        lines = []
        for i, method in enumerate(methods):
            part = summary[(summary["method"] == method) & (summary["series"] == kind)]
            if part.empty:
                continue
            lines.append(
                _band_line(
                    part.sort_values("step"),
                    method_label(method),
                    method_color(method, i),
                    f"step {{step:.0f}}\n{kind}: {{value:.4f}}",
                    width=2.5 if kind == "worst group" else 1.8,
                    markers=len(part) < 30,
                    legend=method not in shown,
                    legend_group=str(method),
                )
            )
            shown.add(method)
        panels.append(
            Panel(
                series=tuple(lines),
                title=title,
                x_title="optimizer step",
                y_title=label if not panels else "",
            )
        )
    return FigureSpec(
        title=f"Worst-group and average {label} over training",
        subtitle=f"{source}; {BAND}",
        panels=(tuple(panels),),
        shared_y=True,
    )


def weights_figure(weights: pd.DataFrame, groups: list[str]) -> FigureSpec:
    """Group weights over steps, one panel per method, one line per group (mean over seeds, 95% band).

    Args:
        weights: :func:`dashboards.shaping.group_weights` output.
        groups: group slugs in id order (fixes the colours).
    """
    order = {slug: i for i, slug in enumerate(groups)}
    panels, shown = [], set()
    for method in ordered(weights["method"]):
        part = weights[weights["method"] == method]
        lines = []
        for slug in sorted(part["group"].unique(), key=lambda s: order.get(s, len(order))):
            line = part[part["group"] == slug].sort_values("step")
            lines.append(
                _band_line(
                    line,
                    str(line["group_name"].iloc[0]),
                    group_color(order.get(slug, len(order))),
                    "step {step:.0f}\nweight {value:.3f}",
                    legend=slug not in shown,
                    legend_group=str(slug),
                )
            )
            shown.add(slug)
        panels.append(
            Panel(
                series=tuple(lines),
                title=method_label(method),
                x_title="optimizer step",
                y_title="" if panels else "group weight α",
                y_from_zero=True,
            )
        )
    return FigureSpec(
        title="Group weights of the group-robust runs",
        subtitle=BAND,
        panels=(tuple(panels) or (Panel(),),),
        shared_y=True,
    )


def gap_figure(gaps: pd.DataFrame) -> FigureSpec:
    """Differences between methods with 95% intervals (a forest plot), 0 marked; one panel per
    compared metric.

    Args:
        gaps: :func:`dashboards.shaping.method_gaps` output, of one or more keys.
    """
    rows, sizes = [], []
    for label in dict.fromkeys(gaps["label"]) or [""]:
        part = gaps[gaps["label"] == label]
        points = Points(
            name=label,
            x=_floats(part["difference"]),
            y=tuple(
                f"{method_label(a)} − {method_label(b)}"
                for a, b in zip(part["method"], part["baseline"], strict=True)
            ),
            color="#333333",
            error=_half_widths(part["ci95"]),
            hover=tuple(
                f"{plus_minus(d, h, 4)}\n{verdict}"
                for d, h, verdict in zip(
                    part["difference"], part["ci95"], part["verdict"], strict=True
                )
            ),
            legend=False,
        )
        x_title = f"difference in {label}" if label else "difference"
        rows.append((Panel(series=(points,), x_title=x_title, x_reference=0.0),))
        sizes.append(len(part))
    return FigureSpec(
        title="Gap between methods (95% interval)",
        subtitle="method − baseline; dashed line: no difference",
        panels=tuple(rows),
        height=110 + sum(70 + 45 * n for n in sizes),
    )


def synthetic_figure(curves: pd.DataFrame, summary: pd.DataFrame) -> FigureSpec:
    """The paper's synthetic layout: per setting (row), worst-group validation loss over iterations
    for the DPO family and the IPO family, and the max reward error per method with 95% intervals.

    Args:
        curves: :func:`dashboards.shaping.synthetic_curves` output.
        summary: :func:`dashboards.shaping.synthetic_summary` output.
    """
    settings = settings_of(pd.concat([curves[["setting"]], summary[["setting"]]])) or [
        "(no setting)"
    ]
    rows, shown = [], set()
    for setting in settings:
        row = []
        for family in (FAMILIES["dpo"], FAMILIES["ipo"]):
            part = curves[(curves["setting"] == setting) & (curves["family"] == family)]
            lines = []
            for method in ordered(part["method"]):
                line = part[part["method"] == method].sort_values("step")
                lines.append(
                    Line(
                        name=method_label(method),
                        x=_floats(line["step"]),
                        y=_floats(line["value"]),
                        color=method_color(method),
                        hover=tuple(
                            f"iteration {s:.0f}\n{v:.4f}"
                            for s, v in zip(line["step"], line["value"], strict=True)
                        ),
                        legend=method not in shown,
                        legend_group=str(method),
                    )
                )
                shown.add(method)
            row.append(
                Panel(
                    series=tuple(lines),
                    title=f"{setting} · {family}",
                    x_title="iteration",
                    y_title="worst-group val. loss",
                )
            )
        bars = summary[summary["setting"] == setting]
        methods = ordered(bars["method"])
        bars = bars.set_index("method").reindex(methods)
        errors = Bars(
            name="max reward error",
            x=tuple(method_label(m) for m in methods),
            y=_floats(bars["max_reward_error"]),
            color=method_color(methods[0]) if methods else "#333333",
            colors=tuple(method_color(m) for m in methods),
            error=_half_widths(bars["max_reward_error_ci95"]),
            hover=tuple(
                f"{method_label(m)}: {plus_minus(v, h, 4)}"
                for m, v, h in zip(
                    methods, bars["max_reward_error"], bars["max_reward_error_ci95"], strict=True
                )
            ),
            legend=False,
        )
        row.append(
            Panel(
                series=(errors,) if methods else (),
                title=f"{setting} · max reward error",
                y_title="max reward error",
            )
        )
        rows.append(tuple(row))
    return FigureSpec(
        title="Synthetic benchmark",
        subtitle="mean over seeds; bars: 95% interval",
        panels=tuple(rows),
        legend="right",
        height=120 + 340 * len(settings),
    )


def _merged_labels(sweep: pd.DataFrame) -> tuple[str, ...]:
    """One label per place: settings whose points lie within 1% of the axes' spans of an earlier
    one (say, two values of chi that reach the same solution) share that one's label."""
    worst, average = sweep["worst"].astype(float), sweep["average"].astype(float)
    near_w = 0.01 * ((worst.max() - worst.min()) or 1.0)
    near_a = 0.01 * ((average.max() - average.min()) or 1.0)
    labels: list[str] = []
    for i, setting in enumerate(sweep["setting"]):
        first = next(
            (
                j
                for j in range(i)
                if labels[j]
                and abs(worst.iloc[i] - worst.iloc[j]) <= near_w
                and abs(average.iloc[i] - average.iloc[j]) <= near_a
            ),
            None,
        )
        if first is None:
            labels.append(str(setting))
        else:
            labels[first] += f", {setting}"
            labels.append("")
    return tuple(labels)


def pareto_figure(sweep: pd.DataFrame, method: str, metric: str = "loss") -> FigureSpec:
    """Worst-group against average ``metric`` of each setting of a sweep (columns ``setting``,
    ``worst``, ``worst_ci95``, ``average``, ``average_ci95``, ``pareto``), 95% intervals over seeds
    on both axes; the Pareto front's settings drawn larger and joined by a line."""
    color = method_color(method)
    front = sweep[sweep["pareto"]].sort_values("average")
    label = metric_label(metric)
    series: list = [
        Line(
            name="Pareto front",
            x=_floats(front["average"]),
            y=_floats(front["worst"]),
            color=color,
            width=1.0,
        ),
        Scatter(
            name=method_label(method),
            x=_floats(sweep["average"]),
            y=_floats(sweep["worst"]),
            color=color,
            x_error=_half_widths(sweep["average_ci95"]),
            y_error=_half_widths(sweep["worst_ci95"]),
            labels=_merged_labels(sweep),
            emphasis=tuple(bool(p) for p in sweep["pareto"]),
            hover=tuple(
                f"{s}\nworst group {w:.4f} ± {wc:.4f}\naverage {a:.4f} ± {ac:.4f}"
                for s, w, wc, a, ac in zip(
                    sweep["setting"],
                    sweep["worst"],
                    sweep["worst_ci95"],
                    sweep["average"],
                    sweep["average_ci95"],
                    strict=True,
                )
            ),  # fmt: skip
        ),
    ]
    return FigureSpec(
        title=f"Worst group against average: {method_label(method)} over its settings",
        subtitle="mean over seeds, bars: 95% intervals; large points and the line: the Pareto "
        f"front ({'higher' if names.HIGHER_IS_BETTER.get(metric) else 'lower'} is better on both axes)",
        panels=(
            (
                Panel(
                    series=tuple(series), x_title=f"average {label}", y_title=f"worst-group {label}"
                ),
            ),
        ),
        height=460,
    )


def frontier_figure(
    frontier: Iterable[tuple[float, float]],
    groups: tuple[str, str],
    methods: dict[str, tuple[float, float]],
    split: str,
) -> FigureSpec:
    """Two groups: the upper frontier of the reward accuracies a group-blind policy can reach on
    ``split`` (``frontier``: its vertices, group A increasing) and each method's (group A, group B)
    point, mean over seeds."""
    points = list(frontier)
    series: list = [
        Line(
            name="group-blind frontier",
            x=_floats(p[0] for p in points),
            y=_floats(p[1] for p in points),
            color="#555555",
            width=1.5,
            markers=True,
        )
    ]
    for index, (method, (a, b)) in enumerate(methods.items()):
        series.append(
            Scatter(
                name=method_label(method),
                x=(float(a),),
                y=(float(b),),
                color=method_color(method, index),
                labels=(method_label(method),),
                hover=(f"{method}\n{groups[0]} {a:.3f}\n{groups[1]} {b:.3f}",),
            )
        )
    return FigureSpec(
        title=f"Group-blind frontier on the {split} split, and each method",
        subtitle="line: the most a policy that cannot see the group reaches on one group given "
        "the other; points: mean over seeds",
        panels=(
            (
                Panel(
                    series=tuple(series),
                    x_title=f"{groups[0]} reward accuracy",
                    y_title=f"{groups[1]} reward accuracy",
                ),
            ),
        ),
        height=460,
    )
