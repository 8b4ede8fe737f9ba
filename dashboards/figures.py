"""Interactive plotly figures of the dashboard, drawn from the tables of :mod:`dashboards.shaping`."""

from __future__ import annotations

import math

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from dashboards.shaping import FAMILIES, ordered, settings_of
from dashboards.style import (
    WORST_COLOR,
    group_color,
    method_color,
    method_label,
    metric_label,
    rgba,
)

TEMPLATE = "plotly_white"
FONT = {"size": 13}


def _layout(fig: go.Figure, title: str, height: int) -> go.Figure:
    fig.update_layout(
        title={"text": title, "x": 0.0, "xanchor": "left"},
        template=TEMPLATE,
        font=FONT,
        height=height,
        margin={"l": 60, "r": 20, "t": 90, "b": 40},
        legend={"orientation": "h", "yanchor": "top", "y": -0.2, "xanchor": "left", "x": 0.0},
    )
    return fig


def _errors(values: pd.Series) -> dict:
    finite = [v if isinstance(v, float) and math.isfinite(v) else 0.0 for v in values.astype(float)]
    return {"type": "data", "array": finite, "visible": any(finite), "thickness": 1.2, "width": 4}


def group_bar_figure(
    bars: pd.DataFrame, metric: str, split: str, subtitle: str | None = None
) -> go.Figure:
    """Bars of ``metric`` per group (x) and method (colour) with 95% intervals; each method's worst
    group is overlaid with a red outline, hatching and the label ``worst``.

    Args:
        bars: :func:`dashboards.shaping.group_bars` output.
        subtitle: the line under the title (default: how the bars and marks are computed).
    """
    fig = go.Figure()
    for i, method in enumerate(ordered(bars["method"])):
        part = bars[bars["method"] == method]
        fig.add_bar(
            name=method_label(method),
            x=part["group_name"],
            y=part["mean"],
            offsetgroup=str(method),
            error_y=_errors(part["ci95"]),
            marker={"color": method_color(method, i)},
            customdata=part[["ci95", "n"]].to_numpy(),
            hovertemplate="%{x}<br>%{y:.4f} ± %{customdata[0]:.4f} (n=%{customdata[1]})<extra>"
            + method_label(method)
            + "</extra>",
        )
        worst = part[part["is_worst"].astype(bool)]
        fig.add_bar(  # drawn over the method's bar: same offset group
            name="worst group",
            legendgroup="worst",
            legendrank=2000,
            showlegend=i == 0 and not worst.empty,
            x=worst["group_name"],
            y=worst["mean"],
            offsetgroup=str(method),
            marker={
                "color": "rgba(0,0,0,0)",
                "line": {"color": WORST_COLOR, "width": 3},
                "pattern": {"shape": "/", "fgcolor": WORST_COLOR, "solidity": 0.15},
            },
            text=["worst"] * len(worst),
            textposition="inside",
            insidetextanchor="start",
            textfont={"color": "white", "size": 12},
            hoverinfo="skip",
        )
    title = f"{split.capitalize()} {metric_label(metric)} per group"
    subtitle = (
        subtitle
        or "mean over seeds, 95% interval; red outline and hatching: each method's worst group"
    )
    fig.update_layout(barmode="group", bargap=0.25, bargroupgap=0.05)
    fig.update_xaxes(title_text="group")
    fig.update_yaxes(title_text=metric_label(metric))
    return _layout(fig, f"{title}<br><sup>{subtitle}</sup>", 460)


def _band(fig: go.Figure, part: pd.DataFrame, color: str, row: int, col: int) -> None:
    if part["low"].notna().any():
        fig.add_scatter(
            x=pd.concat([part["step"], part["step"][::-1]]),
            y=pd.concat([part["high"], part["low"][::-1]]),
            mode="lines",
            fill="toself",
            fillcolor=rgba(color, 0.15),
            line={"width": 0},
            hoverinfo="skip",
            showlegend=False,
            row=row,
            col=col,
        )


def curves_figure(summary: pd.DataFrame, metric: str, source: str) -> go.Figure:
    """Worst-group (left) and average (right) ``metric`` over steps per method, 95% band over seeds.

    Args:
        summary: :func:`dashboards.shaping.curve_summary` output.
        source: ``validation`` or ``training batches`` (said in the title).
    """
    fig = make_subplots(
        rows=1,
        cols=2,
        shared_yaxes=True,
        subplot_titles=("Worst group", "Average over groups"),
        horizontal_spacing=0.05,
    )
    for i, method in enumerate(ordered(summary["method"])):
        color = method_color(method, i)
        for col, series in ((1, "worst group"), (2, "average")):
            part = summary[
                (summary["method"] == method) & (summary["series"] == series)
            ].sort_values("step")
            if part.empty:
                continue
            _band(fig, part, color, 1, col)
            fig.add_scatter(
                x=part["step"],
                y=part["mean"],
                mode="lines+markers" if len(part) < 30 else "lines",
                name=method_label(method),
                legendgroup=method,
                showlegend=col == 1,
                line={"color": color, "width": 2.5 if series == "worst group" else 1.8},
                hovertemplate="step %{x}<br>%{y:.4f}<extra>"
                + method_label(method)
                + f" · {series}</extra>",
                row=1,
                col=col,
            )
    fig.update_xaxes(title_text="optimizer step")
    fig.update_yaxes(title_text=metric_label(metric), col=1)
    title = f"Worst-group and average {metric_label(metric)} over training"
    return _layout(fig, f"{title}<br><sup>{source}; mean over seeds, band: 95% interval</sup>", 420)


def weights_figure(weights: pd.DataFrame, groups: list[str]) -> go.Figure:
    """Group weights over steps, one panel per method, one line per group (mean over seeds, 95% band).

    Args:
        weights: :func:`dashboards.shaping.group_weights` output.
        groups: group slugs in id order (fixes the colours).
    """
    methods = ordered(weights["method"])
    fig = make_subplots(
        rows=1,
        cols=max(len(methods), 1),
        shared_yaxes=True,
        subplot_titles=[method_label(m) for m in methods],
        horizontal_spacing=0.04,
    )
    order = {slug: i for i, slug in enumerate(groups)}
    for col, method in enumerate(methods, start=1):
        part = weights[weights["method"] == method]
        for slug in sorted(part["group"].unique(), key=lambda s: order.get(s, len(order))):
            line = part[part["group"] == slug].sort_values("step")
            color = group_color(order.get(slug, len(order)))
            name = str(line["group_name"].iloc[0])
            _band(fig, line, color, 1, col)
            fig.add_scatter(
                x=line["step"],
                y=line["mean"],
                mode="lines",
                name=name,
                legendgroup=slug,
                showlegend=col == 1,
                line={"color": color, "width": 2},
                hovertemplate="step %{x}<br>weight %{y:.3f}<extra>" + name + "</extra>",
                row=1,
                col=col,
            )
    fig.update_xaxes(title_text="optimizer step")
    fig.update_yaxes(title_text="group weight α", col=1, rangemode="tozero")
    return _layout(
        fig,
        "Group weights of the group-robust runs<br><sup>mean over seeds, band: 95% interval</sup>",
        420,
    )


def gap_figure(gaps: pd.DataFrame) -> go.Figure:
    """Differences between methods with 95% intervals (a forest plot); 0 marked."""
    labels = [
        f"{method_label(a)} − {method_label(b)}"
        for a, b in zip(gaps["method"], gaps["baseline"], strict=True)
    ]
    fig = go.Figure(
        go.Scatter(
            x=gaps["difference"],
            y=labels,
            mode="markers",
            marker={"size": 11, "color": "#333"},
            error_x=_errors(gaps["ci95"]),
            customdata=gaps[["verdict"]].to_numpy(),
            hovertemplate="%{y}: %{x:.4f}<br>%{customdata[0]}<extra></extra>",
            showlegend=False,
        )
    )
    fig.add_vline(x=0, line={"color": "#888", "dash": "dash"})
    fig.update_xaxes(title_text=f"difference in {gaps['label'].iloc[0] if len(gaps) else ''}")
    fig.update_yaxes(autorange="reversed")
    return _layout(fig, "Gap between methods (95% interval)", 160 + 50 * len(gaps))


def synthetic_figure(curves: pd.DataFrame, summary: pd.DataFrame) -> go.Figure:
    """The paper's synthetic layout: per setting (row), worst-group validation loss over iterations
    for the DPO family and the IPO family, and the max reward error per method with 95% intervals."""
    settings = settings_of(pd.concat([curves[["setting"]], summary[["setting"]]])) or [
        "(no setting)"
    ]
    titles = []
    for setting in settings:
        titles += [
            f"{setting} · {FAMILIES['dpo']}",
            f"{setting} · {FAMILIES['ipo']}",
            f"{setting} · max reward error",
        ]
    height = 120 + 340 * len(settings)
    fig = make_subplots(
        rows=len(settings),
        cols=3,
        subplot_titles=titles,
        horizontal_spacing=0.07,
        vertical_spacing=110 / height,
    )
    shown: set[str] = set()
    for row, setting in enumerate(settings, start=1):
        for col, family in ((1, FAMILIES["dpo"]), (2, FAMILIES["ipo"])):
            part = curves[(curves["setting"] == setting) & (curves["family"] == family)]
            for method in ordered(part["method"]):
                line = part[part["method"] == method].sort_values("step")
                fig.add_scatter(
                    x=line["step"],
                    y=line["value"],
                    mode="lines",
                    name=method_label(method),
                    legendgroup=method,
                    showlegend=method not in shown,
                    line={"color": method_color(method), "width": 2},
                    hovertemplate="iteration %{x}<br>%{y:.4f}<extra>"
                    + method_label(method)
                    + "</extra>",
                    row=row,
                    col=col,
                )
                shown.add(method)
            fig.update_xaxes(title_text="iteration", row=row, col=col)
            fig.update_yaxes(title_text="worst-group val. loss", row=row, col=col)
        bars = summary[summary["setting"] == setting]
        methods = ordered(bars["method"])
        bars = bars.set_index("method").loc[methods] if methods else bars
        fig.add_bar(
            x=[method_label(m) for m in methods],
            y=bars["max_reward_error"] if methods else [],
            error_y=_errors(bars["max_reward_error_ci95"]) if methods else None,
            marker={"color": [method_color(m) for m in methods]},
            showlegend=False,
            hovertemplate="%{x}: %{y:.4f}<extra></extra>",
            row=row,
            col=3,
        )
        fig.update_yaxes(title_text="max reward error", row=row, col=3)
    title = "Synthetic benchmark<br><sup>mean over seeds; bars: 95% interval</sup>"
    _layout(fig, title, height)
    fig.update_layout(
        legend={"orientation": "v", "yanchor": "top", "y": 1.0, "xanchor": "left", "x": 1.01}
    )
    return fig
