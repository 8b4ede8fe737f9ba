"""Draws a :class:`~dashboards.figure_spec.FigureSpec` with plotly: the dashboard's interactive figures."""

from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from dashboards.figure_spec import (
    WORST_LEGEND,
    WORST_TEXT,
    Bars,
    FigureSpec,
    Line,
    Points,
    Scatter,
    Series,
)
from dashboards.style import WORST_COLOR, rgba

TEMPLATE = "plotly_white"
FONT = {"size": 13}
BAND_ALPHA = 0.15
LEGENDS = {
    "below": {"orientation": "h", "yanchor": "top", "y": -0.2, "xanchor": "left", "x": 0.0},
    "right": {"orientation": "v", "yanchor": "top", "y": 1.0, "xanchor": "left", "x": 1.01},
}


def to_plotly(spec: FigureSpec) -> go.Figure:
    """The plotly figure of ``spec``: one subplot per panel, the legend below or at the right."""
    titles = [panel.title for _, _, panel in spec.cells()]
    fig = make_subplots(
        rows=spec.rows,
        cols=spec.cols,
        shared_yaxes=spec.shared_y,
        subplot_titles=titles if any(titles) else None,
        horizontal_spacing=0.05 if spec.shared_y else 0.07,
        vertical_spacing=min(110 / spec.height, 1 / spec.rows) if spec.rows > 1 else None,
    )
    for r, c, panel in spec.cells():
        where = {"row": r + 1, "col": c + 1}
        for series in panel.series:
            _add(fig, series, where)
        fig.update_xaxes(title_text=panel.x_title or None, **where)
        fig.update_yaxes(title_text=panel.y_title or None, **where)
        if panel.y_from_zero:
            fig.update_yaxes(rangemode="tozero", **where)
        if any(isinstance(s, Points) for s in panel.series):
            fig.update_yaxes(autorange="reversed", **where)
        if panel.x_reference is not None:
            fig.add_vline(x=panel.x_reference, line={"color": "#888", "dash": "dash"}, **where)
    for i, trace in enumerate(t for t in fig.data if t.name == WORST_LEGEND):
        trace.showlegend = i == 0
    title = f"{spec.title}<br><sup>{spec.subtitle}</sup>" if spec.subtitle else spec.title
    fig.update_layout(
        title={"text": title, "x": 0.0, "xanchor": "left"},
        template=TEMPLATE,
        font=FONT,
        height=spec.height,
        margin={"l": 60, "r": 20, "t": 90, "b": 40},
        legend=LEGENDS[spec.legend],
        barmode="group",
        bargap=0.25,
        bargroupgap=0.05,
    )
    return fig


def _add(fig: go.Figure, series: Series, where: dict) -> None:
    common = {
        "name": series.name,
        "showlegend": series.legend,
        "legendgroup": series.legend_group,
        **_hover(series),
        **where,
    }
    if isinstance(series, Bars):
        _bars(fig, series, common, where)
    elif isinstance(series, Line):
        if series.low is not None and series.high is not None:
            fig.add_scatter(
                x=[*series.x, *reversed(series.x)],
                y=[*series.high, *reversed(series.low)],
                mode="lines",
                fill="toself",
                fillcolor=rgba(series.color, BAND_ALPHA),
                line={"width": 0},
                hoverinfo="skip",
                showlegend=False,
                legendgroup=series.legend_group,
                **where,
            )
        fig.add_scatter(
            x=list(series.x),
            y=list(series.y),
            mode="lines+markers" if series.markers else "lines",
            line={"color": series.color, "width": series.width},
            **common,
        )
    elif isinstance(series, Scatter):
        big = series.emphasis or (False,) * len(series.x)
        fig.add_scatter(
            x=list(series.x),
            y=list(series.y),
            mode="markers+text" if series.labels else "markers",
            text=list(series.labels) if series.labels else None,
            textposition="top right",
            marker={"size": [13 if b else 8 for b in big], "color": series.color},
            error_x=_errors(series.x_error),
            error_y=_errors(series.y_error),
            **common,
        )
    elif isinstance(series, Points):
        fig.add_scatter(
            x=list(series.x),
            y=list(series.y),
            mode="markers",
            marker={"size": 11, "color": series.color},
            error_x=_errors(series.error),
            **common,
        )
    else:
        raise TypeError(f"cannot draw a {type(series).__name__}")


def _bars(fig: go.Figure, bars: Bars, common: dict, where: dict) -> None:
    """The bars, then the highlighted ones drawn over them (same offset group) with a red outline,
    hatching and :data:`WORST_TEXT`."""
    fig.add_bar(
        x=list(bars.x),
        y=list(bars.y),
        offsetgroup=bars.name,
        error_y=_errors(bars.error),
        marker={"color": list(bars.colors) if bars.colors else bars.color},
        **common,
    )
    picked = [i for i, flag in enumerate(bars.highlight or ()) if flag]
    if picked:
        fig.add_bar(
            name=WORST_LEGEND,
            legendgroup="worst",
            legendrank=2000,
            x=[bars.x[i] for i in picked],
            y=[bars.y[i] for i in picked],
            offsetgroup=bars.name,
            marker={
                "color": "rgba(0,0,0,0)",
                "line": {"color": WORST_COLOR, "width": 3},
                "pattern": {"shape": "/", "fgcolor": WORST_COLOR, "solidity": 0.15},
            },
            text=[WORST_TEXT] * len(picked),
            textposition="inside",
            insidetextanchor="start",
            textfont={"color": "white", "size": 12},
            hoverinfo="skip",
            **where,
        )


def _errors(halves: tuple[float, ...] | None) -> dict | None:
    if halves is None:
        return None
    return {"type": "data", "array": list(halves), "visible": True, "thickness": 1.2, "width": 4}


def _hover(series: Series) -> dict:
    """Hover texts as ``customdata``, the series name in the hover box's side label."""
    if series.hover is None:
        return {}
    return {
        "customdata": [text.replace("\n", "<br>") for text in series.hover],
        "hovertemplate": f"%{{customdata}}<extra>{series.name}</extra>",
    }
