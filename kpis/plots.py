"""Funnel plots, cumulative-incidence curves and split charts, drawn with matplotlib's
object-oriented API (a `Figure`, never pyplot: pyplot keeps global state that leaks between
requests), in the style of kpis.charts: the title left to the page, the legend below the plot, a
marker shape or line style as well as a colour for every series, wide and narrow renditions."""

from __future__ import annotations

import io
import math
import textwrap
from collections.abc import Sequence
from fractions import Fraction

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.backends.backend_svg import FigureCanvasSVG
from matplotlib.figure import Figure

from kpis.charts import (
    FORMATS,
    LIMIT_COLOUR,
    LINE_COLOUR,
    LOOKS,
    NARROW,
    NATIONAL_COLOUR,
    WIDE,
    legend_below,
)
from kpis.funnel import ABOVE_95, ABOVE_998, BELOW_95, BELOW_998
from kpis.funnel_chart import FunnelChart

HIGHLIGHT_COLOUR = "#d5281b"
FLAG_STYLE = {  # marker, colour: flagged services stand out by shape as well as colour
    ABOVE_998: ("^", "#007f3b"),
    ABOVE_95: ("^", "#4c9c2e"),
    BELOW_998: ("v", "#8a1538"),
    BELOW_95: ("v", "#d5281b"),
}
PART_STYLES = (("o", "#005eb8"), ("s", "#ed8b00"), ("D", "#330072"), ("^", "#007f3b"))


def to_bytes(figure: Figure, fmt: str) -> bytes:
    """A figure as SVG (no date, so the same chart is the same bytes) or PNG."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}")
    buffer = io.BytesIO()
    if fmt == "png":
        FigureCanvasAgg(figure).print_png(buffer)  # type: ignore[no-untyped-call]
    else:
        FigureCanvasSVG(figure).print_svg(  # type: ignore[no-untyped-call]
            buffer, metadata={"Date": None}
        )
    return buffer.getvalue()


def draw_funnel(chart: FunnelChart, size: str = WIDE) -> Figure:
    """Points at (denominator, value), the target line and the 95% and 99.8% limit lines."""
    look = LOOKS[size]
    figure = Figure(figsize=(look.width, look.height), dpi=100, layout="constrained")
    axes = figure.add_subplot()
    plot = chart.plot
    if plot.target is None:
        axes.text(
            0.5,
            0.5,
            "No service to show",
            transform=axes.transAxes,
            ha="center",
            fontsize=look.text,
        )
        axes.set_axis_off()
        return figure
    ns = chart.curve_denominators()
    bounds = [plot.limits_for(n) for n in ns]
    for attribute, style, label in (
        ("upper998", ":", "99.8% limits (dotted)"),
        ("lower998", ":", None),
        ("upper95", "--", "95% limits (dashed)"),
        ("lower95", "--", None),
    ):
        axes.plot(
            ns,
            [100 * getattr(b, attribute) for b in bounds],
            color=LIMIT_COLOUR,
            linestyle=style,
            linewidth=2,
            label=label,
        )
    axes.axhline(
        100 * float(plot.target), color=NATIONAL_COLOUR, linewidth=2, label="National value (solid)"
    )
    plain = [p for p in chart.shown if p.flag not in FLAG_STYLE and p.point.code != chart.highlight]
    axes.scatter(
        [p.point.denominator for p in plain],
        [100 * float(p.point.value) for p in plain],
        s=60,
        color=LINE_COLOUR,
        marker="o",
        label="Service within the limits",
        zorder=4,
    )
    for flag, (marker, colour) in FLAG_STYLE.items():
        flagged = [p for p in chart.shown if p.flag == flag and p.point.code != chart.highlight]
        if flagged:
            axes.scatter(
                [p.point.denominator for p in flagged],
                [100 * float(p.point.value) for p in flagged],
                s=90,
                color=colour,
                marker=marker,
                label=f"Service {flag.replace('_', ' ').replace('998', '99.8%').replace('95', '95%')}",
                zorder=5,
            )
    mine = chart.highlighted
    if mine is not None:
        x, y = mine.point.denominator, 100 * float(mine.point.value)
        axes.scatter(
            [x],
            [y],
            s=260,
            color=HIGHLIGHT_COLOUR,
            marker="*",
            label=f"{mine.point.code} (yours)",
            zorder=6,
        )
        axes.annotate(
            mine.point.code,
            (x, y),
            textcoords="offset points",
            xytext=(10, 8),
            fontsize=look.text,
            weight="bold",
        )
    axes.set_ylim(0, 100)
    axes.set_xlim(0, ns[-1])
    axes.set_xlabel("Denominator (patients)", fontsize=look.text)
    axes.set_ylabel("Per cent", fontsize=look.text)
    axes.tick_params(labelsize=look.small)
    axes.grid(color="#d8dde0", linewidth=1)
    axes.spines[["top", "right"]].set_visible(False)
    legend_below(figure, axes, look)
    return figure


def draw_incidence(
    title: str,
    series: Sequence[tuple[str, list[tuple[int, Fraction]]]],
    until: int,
    size: str = WIDE,
) -> Figure:
    """Cumulative incidence of refracture (per cent) against days since the index fracture, as
    steps; one line per series (the service solid, the nation dotted). The title is the page's."""
    look = LOOKS[size]
    figure = Figure(figsize=(look.width, look.height * 0.9), dpi=100, layout="constrained")
    axes = figure.add_subplot()
    top = 5.0
    for (label, steps), (style, colour, words) in zip(
        series,
        (("-", LINE_COLOUR, "solid"), (":", NATIONAL_COLOUR, "dotted")),
        strict=False,
    ):
        days = [day for day, _ in steps] + [until]
        values = [100 * float(cif) for _, cif in steps]
        values.append(values[-1])
        top = max(top, max(values) * 1.2)
        axes.step(
            days,
            values,
            where="post",
            linestyle=style,
            color=colour,
            linewidth=3,
            label=f"{label} ({words})",
        )
    axes.set_xlim(0, until)
    axes.set_ylim(0, math.ceil(top))
    axes.set_xticks(
        [0, 91, 182, 274, 365, 456, 547, 639, 730][: 1 + until // 91],
        ["0", "3", "6", "9", "12", "15", "18", "21", "24"][: 1 + until // 91],
        fontsize=look.small,
    )
    axes.tick_params(axis="y", labelsize=look.small)
    axes.set_xlabel("Months since the fracture", fontsize=look.text)
    axes.set_ylabel("Per cent with another fracture", fontsize=look.text)
    axes.grid(color="#d8dde0", linewidth=1)
    axes.spines[["top", "right"]].set_visible(False)
    legend_below(figure, axes, look)
    return figure


def draw_split(
    title: str,
    measures: Sequence[str],
    parts: Sequence[tuple[str, Sequence[float | None]]],
    whole: Sequence[float | None],
    size: str = WIDE,
) -> Figure:
    """A dot plot: one row per measure, one marker per part (shape and colour), a bar for the
    whole. None (no value, or not shown) leaves the marker out. The title is the page's."""
    look = LOOKS[size]
    height = 2.2 + (0.8 if size == NARROW else 0.55) * len(measures)
    figure = Figure(figsize=(look.width, height), dpi=100, layout="constrained")
    axes = figure.add_subplot()
    rows = list(range(len(measures)))[::-1]
    for row, value in zip(rows, whole, strict=True):
        if value is not None:
            axes.plot([value, value], [row - 0.35, row + 0.35], color="#212b32", linewidth=3)
    axes.plot([], [], color="#212b32", linewidth=3, label="Everyone")
    for (label, values), (marker, colour) in zip(parts, PART_STYLES, strict=False):
        shown = [(v, r) for v, r in zip(values, rows, strict=True) if v is not None]
        axes.scatter(
            [v for v, _ in shown],
            [r for _, r in shown],
            s=110,
            marker=marker,
            color=colour,
            label=label,
            zorder=4,
        )
    # On a phone the measures' names wrap, so the plot keeps most of the width.
    width = 20 if size == NARROW else 60
    axes.set_yticks(rows, [textwrap.fill(m, width) for m in measures], fontsize=look.small)
    axes.set_xlim(0, 100)
    axes.set_xlabel("Per cent", fontsize=look.text)
    axes.tick_params(axis="x", labelsize=look.small)
    axes.grid(axis="x", color="#d8dde0", linewidth=1)
    axes.spines[["top", "right"]].set_visible(False)
    legend_below(figure, axes, look)
    return figure
