"""What a figure shows, independent of how it is drawn.

:mod:`dashboards.figures` builds a :class:`FigureSpec` per figure from the tables of
:mod:`dashboards.shaping`; :func:`dashboards.render_plotly.to_plotly` draws it for the dashboard
and :func:`dashboards.render_matplotlib.to_matplotlib` for the report's PNGs. A spec is a grid of
:class:`Panel` s, each holding series: :class:`Bars`, :class:`Line` or :class:`Points`. Values are
plain tuples; an unknown interval half-width is ``0.0`` (no whisker), and ``None`` means none is known.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar, Literal

WORST_TEXT = "worst"
"""Written on each highlighted bar."""
WORST_LEGEND = "worst group"
"""The legend entry of the highlighted bars."""


@dataclass(frozen=True, kw_only=True)
class Series:
    """Points ``(x, y)`` with a colour, a legend entry and optional hover texts (one per point)."""

    name: str
    x: tuple
    y: tuple
    color: str
    hover: tuple[str, ...] | None = None
    legend: bool = True
    """Listed in the legend (set on one series per name)."""
    legend_group: str | None = None
    """Series of one group are shown and hidden together (interactive legends)."""

    PER_POINT: ClassVar[tuple[str, ...]] = ("y", "hover")

    def __post_init__(self) -> None:
        for field in self.PER_POINT:
            values = getattr(self, field)
            if values is not None and len(values) != len(self.x):
                raise ValueError(
                    f"{type(self).__name__} {self.name!r}: {len(values)} {field} for {len(self.x)} x"
                )


@dataclass(frozen=True, kw_only=True)
class Bars(Series):
    """One bar per category ``x``; the bars of several series in a panel stand side by side."""

    colors: tuple[str, ...] | None = None
    """One colour per bar, instead of ``color``."""
    error: tuple[float, ...] | None = None
    """Symmetric half-widths of the error bars."""
    highlight: tuple[bool, ...] | None = None
    """Bars drawn with a red outline, hatching and :data:`WORST_TEXT`."""

    PER_POINT = ("y", "hover", "colors", "error", "highlight")


@dataclass(frozen=True, kw_only=True)
class Line(Series):
    """A line over numeric ``x``, with an optional band from ``low`` to ``high``."""

    low: tuple[float, ...] | None = None
    high: tuple[float, ...] | None = None
    width: float = 2.0
    markers: bool = False

    PER_POINT = ("y", "hover", "low", "high")


@dataclass(frozen=True, kw_only=True)
class Points(Series):
    """Estimates ``x`` with horizontal error bars, one row per label ``y``, top to bottom (a forest plot)."""

    error: tuple[float, ...] | None = None

    PER_POINT = ("y", "hover", "error")


@dataclass(frozen=True, kw_only=True)
class Scatter(Series):
    """Points on two numeric axes, each with its own x and y 95% half-widths and an optional text
    label beside it; ``emphasis`` draws some points larger (say, a Pareto front)."""

    x_error: tuple[float, ...] | None = None
    y_error: tuple[float, ...] | None = None
    labels: tuple[str, ...] | None = None
    emphasis: tuple[bool, ...] | None = None

    PER_POINT = ("y", "hover", "x_error", "y_error", "labels", "emphasis")


@dataclass(frozen=True, kw_only=True)
class Panel:
    """One set of axes. Bars make ``x`` categorical, points make ``y`` categorical."""

    series: tuple[Series, ...] = ()
    title: str = ""
    x_title: str = ""
    y_title: str = ""
    y_from_zero: bool = False
    x_reference: float | None = None
    """Where to draw a dashed vertical line (e.g. 0 on an axis of differences)."""


@dataclass(frozen=True, kw_only=True)
class FigureSpec:
    """A titled grid of panels with one legend."""

    title: str
    subtitle: str = ""
    panels: tuple[tuple[Panel, ...], ...]
    """Rows of panels, all of one length."""
    shared_y: bool = False
    """The panels of a row share their y axis."""
    legend: Literal["below", "right"] = "below"
    height: int = 420
    """In pixels; the static figure is ``height / 100`` inches tall."""

    def __post_init__(self) -> None:
        if not self.panels or len({len(row) for row in self.panels}) != 1 or not self.panels[0]:
            raise ValueError("a figure needs a non-empty grid of panels, all rows of one length")

    @property
    def rows(self) -> int:
        return len(self.panels)

    @property
    def cols(self) -> int:
        return len(self.panels[0])

    def cells(self) -> Iterator[tuple[int, int, Panel]]:
        """``(row, col, panel)`` for every panel, counting from 0."""
        for r, row in enumerate(self.panels):
            for c, panel in enumerate(row):
                yield r, c, panel
