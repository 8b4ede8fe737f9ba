"""The figure specs, from hand-made tables shaped like :mod:`dashboards.shaping`'s, and both renderers."""

from __future__ import annotations

import math

import pandas as pd
import plotly.graph_objects as go
import pytest
from matplotlib.container import BarContainer, ErrorbarContainer
from matplotlib.figure import Figure

from dashboards import figures
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
from dashboards.render_matplotlib import to_matplotlib
from dashboards.render_plotly import to_plotly
from dashboards.shaping import FAMILIES, GAP_COLUMNS
from dashboards.style import GROUP_COLORS, METHOD_COLORS, WORST_COLOR

NAN = float("nan")


def group_bars(ci95=(0.1, NAN, 0.05, 0.02)) -> pd.DataFrame:
    """:func:`dashboards.shaping.group_bars`: IPO worst on A, GR-IPO worst on B."""
    return pd.DataFrame(
        {
            "method": ["ipo", "ipo", "gr_ipo", "gr_ipo"],
            "group": ["a", "b", "a", "b"],
            "group_name": ["Group A", "Group B", "Group A", "Group B"],
            "mean": [0.9, 0.5, 0.6, 0.7],
            "ci95": list(ci95),
            "n": [2, 2, 2, 2],
            "is_worst": [True, False, False, True],
        }
    )


def curve_summary() -> pd.DataFrame:
    """:func:`dashboards.shaping.curve_summary`: IPO over two seeds (a band), GR-IPO over one (none)."""
    rows = [
        (method, series, step, 0.9, low, high, n)
        for method, low, high, n in (("ipo", 0.8, 1.0, 2), ("gr_ipo", NAN, NAN, 1))
        for series in ("worst group", "average")
        for step in (10, 0)  # unsorted: the figure sorts by step
    ]
    return pd.DataFrame(rows, columns=["method", "series", "step", "mean", "low", "high", "n"])


def group_weights() -> pd.DataFrame:
    """:func:`dashboards.shaping.group_weights` of GR-DPO and GR-IPO, groups listed b before a."""
    rows = [
        (method, slug, f"Group {slug.upper()}", step, weight, weight - 0.1, weight + 0.1, 2)
        for method in ("gr_ipo", "gr_dpo")
        for slug, weight in (("b", 0.4), ("a", 0.6))
        for step in (0, 1)
    ]
    columns = ["method", "group", "group_name", "step", "mean", "low", "high", "n"]
    return pd.DataFrame(rows, columns=columns)


def method_gaps(*rows: tuple[str, float]) -> pd.DataFrame:
    """:func:`dashboards.shaping.method_gaps`: GR-IPO − IPO = -0.2 on each ``(label, ci95)``."""
    return pd.DataFrame(
        [
            {
                "method": "gr_ipo",
                "baseline": "ipo",
                "key": f"key{i}",
                "label": label,
                "difference": -0.2,
                "ci95": ci95,
                "low": -0.2 - ci95,
                "high": -0.2 + ci95,
                "n": "2",
                "paired": True,
                "verdict": "gr_ipo better",
            }
            for i, (label, ci95) in enumerate(rows)
        ],
        columns=GAP_COLUMNS,
    )


def synthetic_tables() -> tuple[pd.DataFrame, pd.DataFrame]:
    """:func:`dashboards.shaping.synthetic_curves` and ``synthetic_summary`` of two settings."""
    settings = ("uneven-imbalanced", "even-imbalanced")  # the figure orders them
    methods = ("ipo", "gr_ipo", "dpo")
    curves = pd.DataFrame(
        [
            (s, FAMILIES["ipo" if m.endswith("ipo") else "dpo"], m, step, 1.0 - 0.1 * step)
            for s in settings
            for m in methods
            for step in (0, 1, 2)
        ],
        columns=["setting", "family", "method", "step", "value"],
    )
    summary = pd.DataFrame(
        [
            {
                "setting": s,
                "family": FAMILIES["ipo" if m.endswith("ipo") else "dpo"],
                "method": m,
                "max_val_group_loss": 0.5,
                "max_val_group_loss_ci95": 0.1,
                "max_reward_error": 0.1 * (i + 1),
                "max_reward_error_ci95": 0.01,
                "weight_group_0": 0.5,
                "weight_group_1": 0.5,
                "seeds": 3,
            }
            for s in settings
            for i, m in enumerate(methods)
        ]
    )
    return curves, summary


def only_panel(spec: FigureSpec) -> Panel:
    assert (spec.rows, spec.cols) == (1, 1)
    return spec.panels[0][0]


# The specs ---------------------------------------------------------------------------------------


def test_group_bars_have_one_series_per_method_with_its_worst_group_highlighted():
    spec = figures.group_bar_figure(group_bars(), "loss", "test")
    assert spec.title == "Test loss per group"
    panel = only_panel(spec)
    assert (panel.x_title, panel.y_title) == ("group", "loss")
    ipo, gr_ipo = panel.series
    assert isinstance(ipo, Bars) and isinstance(gr_ipo, Bars)
    assert (ipo.name, gr_ipo.name) == ("IPO", "GR-IPO"), "the paper's order and labels"
    assert (ipo.color, gr_ipo.color) == (METHOD_COLORS["ipo"], METHOD_COLORS["gr_ipo"])
    assert ipo.x == gr_ipo.x == ("Group A", "Group B")
    assert ipo.y == (0.9, 0.5) and gr_ipo.y == (0.6, 0.7)
    assert ipo.highlight == (True, False) and gr_ipo.highlight == (False, True)
    assert ipo.error == (0.1, 0.0), "a NaN interval becomes no error bar (half-width 0)"
    assert gr_ipo.error == (0.05, 0.02), "half-widths passed through"
    assert ipo.hover == ("Group A\n0.9000 ± 0.1000 (n=2)", "Group B\n0.5000 (n=2)")


def test_group_bars_of_single_seeds_have_no_error_bars_and_take_a_subtitle():
    spec = figures.group_bar_figure(group_bars(ci95=[NAN] * 4), "loss", "validation", "run-7")
    assert all(s.error is None for s in only_panel(spec).series)
    assert (spec.title, spec.subtitle) == ("Validation loss per group", "run-7")


def test_curves_are_one_line_per_method_and_panel_with_their_bands():
    spec = figures.curves_figure(curve_summary(), "loss", "validation")
    assert spec.shared_y and spec.subtitle.startswith("validation; ")
    worst, average = spec.panels[0]
    assert (worst.title, average.title) == ("Worst group", "Average over groups")
    assert (worst.y_title, average.y_title) == ("loss", ""), "one y title on a shared axis"
    ipo, gr_ipo = worst.series
    assert isinstance(ipo, Line) and (ipo.name, gr_ipo.name) == ("IPO", "GR-IPO")
    assert ipo.x == (0.0, 10.0), "sorted by step"
    assert ipo.low == (0.8, 0.8) and ipo.high == (1.0, 1.0)
    assert gr_ipo.low is None and gr_ipo.high is None, "one seed: no band"
    assert ipo.width > average.series[0].width, "the worst group is drawn heavier"
    assert [s.legend for s in worst.series] == [True, True]
    assert [s.legend for s in average.series] == [False, False], "each method listed once"


def test_weights_are_one_panel_per_method_one_line_per_group_in_group_order():
    spec = figures.weights_figure(group_weights(), ["a", "b"])
    assert [p.title for p in spec.panels[0]] == ["GR-DPO", "GR-IPO"]
    assert all(p.y_from_zero for p in spec.panels[0])
    first, second = spec.panels[0]
    assert [s.name for s in first.series] == ["Group A", "Group B"]
    assert [s.color for s in first.series] == [GROUP_COLORS[0], GROUP_COLORS[1]]
    assert first.series[0].low == (0.5, 0.5) and first.series[0].high == (0.7, 0.7)
    assert [s.legend for s in second.series] == [False, False]


def test_weights_of_no_run_is_one_empty_panel():
    spec = figures.weights_figure(group_weights().iloc[:0], ["a", "b"])
    assert spec.panels == ((Panel(),),)


def test_gap_is_a_forest_plot_with_zero_marked():
    spec = figures.gap_figure(method_gaps(("worst-group loss", 0.05)))
    panel = only_panel(spec)
    (points,) = panel.series
    assert isinstance(points, Points)
    assert points.y == ("GR-IPO − IPO",) and points.x == (-0.2,) and points.error == (0.05,)
    assert panel.x_reference == 0.0 and panel.x_title == "difference in worst-group loss"


def test_gap_of_several_metrics_is_one_panel_each():
    spec = figures.gap_figure(
        method_gaps(("worst-group loss", 0.05), ("imbalance (max-min) loss", NAN))
    )
    assert (spec.rows, spec.cols) == (2, 1)
    assert [row[0].x_title for row in spec.panels] == [
        "difference in worst-group loss",
        "difference in imbalance (max-min) loss",
    ]
    assert spec.panels[1][0].series[0].error is None, "no interval: no error bar"


def test_synthetic_is_one_row_per_setting_with_both_families_and_the_reward_error():
    spec = figures.synthetic_figure(*synthetic_tables())
    assert spec.legend == "right"
    assert [[p.title for p in row] for row in spec.panels] == [
        [
            "even-imbalanced · DPO family",
            "even-imbalanced · IPO family",
            "even-imbalanced · max reward error",
        ],
        [
            "uneven-imbalanced · DPO family",
            "uneven-imbalanced · IPO family",
            "uneven-imbalanced · max reward error",
        ],
    ]
    dpo, ipo, errors = spec.panels[0]
    assert [s.name for s in dpo.series] == ["DPO"] and [s.name for s in ipo.series] == [
        "IPO",
        "GR-IPO",
    ]
    (bars,) = errors.series
    assert bars.x == ("DPO", "IPO", "GR-IPO")
    assert bars.y == pytest.approx((0.3, 0.1, 0.2))
    assert bars.colors == tuple(METHOD_COLORS[m] for m in ("dpo", "ipo", "gr_ipo"))
    assert bars.error == (0.01, 0.01, 0.01) and not bars.legend
    listed = [s.name for row in spec.panels for p in row for s in p.series if s.legend]
    assert listed == ["DPO", "IPO", "GR-IPO"], "each method listed once"


def test_series_lengths_must_match():
    with pytest.raises(ValueError, match="1 error for 2 x"):
        Bars(name="b", x=("a", "b"), y=(1.0, 2.0), color="#000000", error=(0.1,))


def sweep() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "setting": ["χ=0", "χ=0.5", "χ=0.75", "χ=1"],
            "worst": [0.55, 0.45, 0.46, 0.46],
            "worst_ci95": [0.01, 0.01, 0.02, 0.02],
            "average": [0.33, 0.39, 0.42, 0.42],
            "average_ci95": [0.005, 0.01, NAN, 0.01],
            "pareto": [True, True, False, False],
        }
    )


def test_pareto_is_every_setting_with_both_intervals_and_its_front_joined():
    spec = figures.pareto_figure(sweep(), "gr_dpo")
    (panel,) = spec.panels[0]
    front, points = panel.series
    assert isinstance(points, Scatter) and points.name == "GR-DPO"
    assert points.x == (0.33, 0.39, 0.42, 0.42) and points.y == (0.55, 0.45, 0.46, 0.46)
    assert points.y_error == (0.01, 0.01, 0.02, 0.02)
    assert points.x_error == (0.005, 0.01, 0.0, 0.01), "an unknown interval is drawn as none"
    assert points.emphasis == (True, True, False, False)
    assert points.labels == ("χ=0", "χ=0.5", "χ=0.75, χ=1", ""), "one label per place"
    assert (front.x, front.y) == ((0.33, 0.39), (0.55, 0.45)), "the front, by average"
    assert panel.x_title == "average loss" and panel.y_title == "worst-group loss"


# Both renderers ----------------------------------------------------------------------------------

SPECS = {
    "group bars": lambda: figures.group_bar_figure(group_bars(), "loss", "test"),
    "curves": lambda: figures.curves_figure(curve_summary(), "loss", "validation"),
    "weights": lambda: figures.weights_figure(group_weights(), ["a", "b"]),
    "gaps": lambda: figures.gap_figure(method_gaps(("worst-group loss", 0.05), ("gap", NAN))),
    "synthetic": lambda: figures.synthetic_figure(*synthetic_tables()),
    "empty synthetic": lambda: figures.synthetic_figure(*(t.iloc[:0] for t in synthetic_tables())),
    "pareto": lambda: figures.pareto_figure(sweep(), "gr_dpo"),
}
TRACES = {
    "group bars": 2 + 2,  # a bar trace and a worst-group overlay per method
    "curves": 4 + 2,  # a line per method and panel, IPO's band in both panels
    "weights": 2 * 2 * 2,  # per method and group: a line and its band
    "gaps": 2,  # one forest plot per metric
    "synthetic": 2 * (1 + 2 + 1),  # per setting: DPO, IPO and GR-IPO lines, the bars
    "empty synthetic": 0,
    "pareto": 2,  # the front's line, the points with their intervals
}


@pytest.mark.parametrize("name", SPECS)
def test_both_renderers_draw_every_figure(name):
    spec = SPECS[name]()
    interactive = to_plotly(spec)
    assert isinstance(interactive, go.Figure)
    assert len(interactive.data) == TRACES[name]
    assert interactive.layout.title.text.startswith(spec.title)
    static = to_matplotlib(spec)
    assert isinstance(static, Figure)
    assert len(static.axes) == spec.rows * spec.cols
    assert spec.title in static.get_suptitle()


def test_plotly_overlays_the_worst_groups_with_a_red_outline_and_the_label():
    fig = to_plotly(figures.group_bar_figure(group_bars(), "loss", "test"))
    overlays = [t for t in fig.data if t.name == WORST_LEGEND]
    assert [(t.x, t.offsetgroup) for t in overlays] == [
        (("Group A",), "IPO"),
        (("Group B",), "GR-IPO"),
    ]
    assert all(t.marker.line.color == WORST_COLOR and t.text == (WORST_TEXT,) for t in overlays)
    assert [t.showlegend for t in overlays] == [True, False], "one legend entry"
    ipo = fig.data[0]
    assert ipo.error_y.array == (0.1, 0.0) and ipo.marker.color == METHOD_COLORS["ipo"]
    assert fig.layout.template.layout.paper_bgcolor == "white", "plotly_white"
    assert fig.layout.legend.orientation == "h"


def test_plotly_draws_bands_shared_axes_and_the_legend_at_the_right():
    curves = to_plotly(figures.curves_figure(curve_summary(), "loss", "validation"))
    assert [t.fill for t in curves.data].count("toself") == 2, "IPO's band in both panels"
    assert curves.layout.yaxis2.matches == "y", "shared y"
    synthetic = to_plotly(figures.synthetic_figure(*synthetic_tables()))
    assert synthetic.layout.legend.orientation == "v" and synthetic.layout.legend.x > 1


def test_matplotlib_hatches_and_marks_the_worst_bars_and_lists_them():
    fig = to_matplotlib(figures.group_bar_figure(group_bars(), "loss", "test"))
    (ax,) = fig.axes
    hatched = [p for p in ax.patches if p.get_hatch() == "//"]
    assert len(hatched) == 2, "one worst group per method"
    assert [t.get_text() for t in ax.texts] == [WORST_TEXT, WORST_TEXT]
    errorbars = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    assert sum(len(c.lines[2][0].get_segments()) for c in errorbars) == 3, (
        "no whisker for a NaN interval"
    )
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["IPO", "GR-IPO", WORST_LEGEND]


def test_matplotlib_single_seed_bars_have_no_error_bars():
    fig = to_matplotlib(figures.group_bar_figure(group_bars(ci95=[NAN] * 4), "loss", "test"))
    containers = fig.axes[0].containers
    assert containers and all(isinstance(c, BarContainer) for c in containers)


def test_matplotlib_draws_bands_and_a_forest_plot():
    curves = to_matplotlib(figures.curves_figure(curve_summary(), "loss", "validation"))
    assert [len(ax.collections) for ax in curves.axes] == [1, 1], "IPO's band per panel"
    gaps = to_matplotlib(figures.gap_figure(method_gaps(("worst-group loss", 0.05))))
    (ax,) = gaps.axes
    assert [t.get_text() for t in ax.get_yticklabels()] == ["GR-IPO − IPO"]
    assert any(math.isclose(line.get_xdata()[0], 0.0) for line in ax.lines), "0 marked"


@pytest.mark.parametrize(
    "names", [["a", "b"], [f"Country {i} (current national sample)" for i in range(5)]]
)
def test_matplotlib_legend_below_stays_inside_the_figure(names):
    lines = tuple(Line(name=n, x=(0, 1), y=(0.2, 0.3), color=GROUP_COLORS[0]) for n in names)
    fig = to_matplotlib(FigureSpec(title="t", panels=((Panel(series=lines),),)))
    fig.canvas.draw()
    (legend,) = fig.legends
    box, page = legend.get_window_extent(), fig.bbox
    assert page.x0 <= box.x0 and box.x1 <= page.x1, (box, page)
    assert len(legend.get_texts()) == len(names)
