"""Run charts drawn with matplotlib's object-oriented API (a `Figure` on the Agg canvas, never
pyplot: pyplot keeps global state that leaks between requests). Made to be read at a glance: the
title is the page's (never clipped in the image), the legend sits below the plot, the signals are
marked on the chart itself, and every series and band differs by line style, marker or hatching as
well as colour. Two sizes: wide for a desktop or print, narrow for a phone (about 390 px)."""

from __future__ import annotations

import io
import math
import textwrap
from dataclasses import dataclass

import matplotlib
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.backends.backend_svg import FigureCanvasSVG
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure

from kpis.definitions import AMBER, GREEN, RED
from kpis.runchart import RunChart

# NHS identity colours, as in portal/static/css/portal.css.
BAND_COLOURS = {GREEN: "#007f3b", AMBER: "#ffb81c", RED: "#d5281b"}
LINE_COLOUR = "#005eb8"  # NHS blue
NATIONAL_COLOUR = "#425563"  # NHS dark grey
LIMIT_COLOUR = "#768692"
FLAG_COLOUR = "#d5281b"
FORMATS = ("svg", "png")
WIDE, NARROW = "wide", "narrow"
SIZES = (WIDE, NARROW)
BAND_HATCHES = {GREEN: "", AMBER: ".", RED: "/"}  # the bands differ without colour too
BAND_NAMES = {GREEN: "Green band", AMBER: "Amber band", RED: "Red band"}
RUN_SHADE = "#4c6272"


@dataclass(frozen=True)
class Look:
    """The sizes of one rendition: figure size in inches, type sizes in points, and how many
    x-axis labels fit."""

    width: float
    height: float
    text: float
    small: float
    legend_columns: int
    x_labels: int
    label_characters: int  # a legend entry longer than this wraps onto another line


LOOKS = {
    WIDE: Look(11, 6.4, 14, 12.5, 2, 12, 55),
    # 5.4 in drawn about 370 px wide on a phone: 12 pt type is about 11 px there.
    NARROW: Look(5.4, 6.6, 12, 11, 1, 6, 44),
}


def size_of(text: str | None) -> str:
    """The rendition asked for in a query string: narrow, or wide for anything else."""
    return NARROW if text == NARROW else WIDE


def legend_below(figure: Figure, axes: Axes, look: Look) -> None:
    """The legend under the plot, across the figure's width, so the plot keeps the width."""
    handles, labels = axes.get_legend_handles_labels()
    if handles:
        figure.legend(
            handles,
            [textwrap.fill(label, look.label_characters) for label in labels],
            loc="outside lower center",
            ncols=min(look.legend_columns, len(handles)),
            fontsize=look.small,
            frameon=False,
        )


# SVG element ids are salted with a random value per process unless a salt is set: a fixed salt
# makes a chart render to the same bytes in every worker (set once, at import, never per request).
matplotlib.rcParams["svg.hashsalt"] = "fls-portal-kpis"


def _band_regions(chart: RunChart, top: float) -> list[tuple[float, float, str]]:
    """(from, to, band) stripes behind the data; KPI 1 of a service is banded on whether it meets
    the completeness rule, not on its value, so it gets none."""
    banding = chart.kpi.banding
    if chart.kpi.number == 1 and chart.subject != "National":
        return []
    green_from = banding.green_above if banding.green_above is not None else banding.green_from
    if green_from is None:
        return []
    regions = []
    amber_from = banding.amber_from
    red_top = float(amber_from if amber_from is not None else green_from)
    regions.append((0.0, red_top, RED))
    if amber_from is not None:
        regions.append((float(amber_from), float(green_from), AMBER))
    regions.append((float(green_from), top, GREEN))
    return regions


def _draw_bands(axes: Axes, chart: RunChart, top: float, look: Look) -> None:
    """The bands as tinted, hatched stripes, each named at its right-hand edge."""
    for low, high, band in _band_regions(chart, top):
        colour = BAND_COLOURS[band]
        axes.axhspan(
            low,
            high,
            facecolor=to_rgba(colour, 0.10),
            edgecolor=to_rgba(colour, 0.55),
            hatch=BAND_HATCHES[band],
            linewidth=0,
            zorder=0,
        )
        axes.text(
            1.01,
            (low + high) / 2 / top,
            BAND_NAMES[band].split()[0],
            transform=axes.transAxes,
            ha="left",
            va="center",
            fontsize=look.small,
            color="#212b32",
            alpha=0.8,
        )


def _draw_signals(axes: Axes, chart: RunChart, values: list[float], look: Look) -> None:
    """Out-of-limit months ringed; the unusually long run shaded with hatching; when there are
    unusually few crossings of the median, each crossing marked with a cross on the median."""
    flagged = [i for i, m in enumerate(chart.months) if m.flagged]
    if flagged:
        axes.scatter(
            flagged,
            [values[i] for i in flagged],
            s=260 if look is LOOKS[WIDE] else 180,
            facecolors="none",
            edgecolors=FLAG_COLOUR,
            linewidths=3,
            zorder=6,
            label="Outside the control limits (ringed)",
        )
    run, crossings = chart.signal_positions()
    rules = chart.rules
    if run is not None:
        axes.axvspan(
            run[0] - 0.4,
            run[1] + 0.4,
            facecolor=to_rgba(RUN_SHADE, 0.18),
            linewidth=0,
            zorder=1,
            label=f"Unusually long run ({rules.longest_run} months)",
        )
        axes.text(
            (run[0] + run[1]) / 2,
            0.97,
            "Long run",
            transform=axes.get_xaxis_transform(),
            ha="center",
            va="top",
            fontsize=look.small,
            weight="bold",
            color="#212b32",
        )
    if rules.few_crossings and rules.median is not None:
        axes.scatter(
            [(a + b) / 2 for a, b in crossings],
            [rules.median] * len(crossings),
            s=160,
            marker="X",
            color="#212b32",
            zorder=6,
            label=f"Crossing of the median (only {rules.crossings}, too few)",
        )


def draw(chart: RunChart, size: str = WIDE) -> Figure:
    """The chart as a matplotlib Figure; the title is left to the page (and the file's name)."""
    look = LOOKS[size]
    figure = Figure(figsize=(look.width, look.height), dpi=100, layout="constrained")
    axes = figure.add_subplot()
    months = chart.months
    x = list(range(len(months)))
    values = [math.nan if m.value is None else float(m.value) for m in months]
    finite = [v for v in values if not math.isnan(v)]
    national = [math.nan if m.national is None else float(m.national) for m in months]
    highest = max([*finite, *[v for v in national if not math.isnan(v)], 100.0])
    top = 100.0 if highest <= 100 else highest * 1.08

    _draw_bands(axes, chart, top, look)
    if chart.is_p_chart:
        lower = [math.nan if m.lower is None else m.lower for m in months]
        upper = [math.nan if m.upper is None else m.upper for m in months]
        axes.step(
            x,
            upper,
            where="mid",
            color=LIMIT_COLOUR,
            linestyle="--",
            linewidth=1.8,
            label="Control limits (dashed)",
        )
        axes.step(x, lower, where="mid", color=LIMIT_COLOUR, linestyle="--", linewidth=1.8)
    if chart.centre is not None and months:
        label = "Average, p-bar (solid)" if chart.is_p_chart else "Median (solid)"
        axes.axhline(chart.centre, color="#212b32", linewidth=2, label=label)
    if chart.is_p_chart and chart.rules.signal and chart.rules.median is not None:
        # The run rules read the median, not p-bar: draw it when they signal.
        axes.axhline(
            chart.rules.median,
            color="#212b32",
            linestyle="-.",
            linewidth=1.5,
            label="Median (dash-dot)",
        )
    if chart.has_national:
        axes.plot(
            x,
            national,
            color=NATIONAL_COLOUR,
            linestyle=":",
            linewidth=2.5,
            marker="s",
            markersize=5,
            label="National (dotted, squares)",
        )
    axes.plot(
        x,
        values,
        color=LINE_COLOUR,
        linewidth=3,
        marker="o",
        markersize=7 if size == WIDE else 5,
        label=f"{chart.subject} (solid, dots)",
        zorder=5,
    )
    _draw_signals(axes, chart, values, look)

    axes.set_ylim(0, top)
    axes.set_xlim(-0.5, max(len(months) - 0.5, 0.5))
    step = max(1, math.ceil(len(months) / look.x_labels))
    axes.set_xticks(
        x[::step],
        [m.month.label() for m in months][::step],
        rotation=45,
        ha="right",
        fontsize=look.small,
    )
    axes.tick_params(axis="y", labelsize=look.small)
    axes.set_ylabel("Per cent", fontsize=look.text)
    axes.grid(axis="y", color="#d8dde0", linewidth=1)
    axes.spines[["top", "right"]].set_visible(False)
    if months:
        legend_below(figure, axes, look)
    if not finite:
        axes.text(
            0.5, 0.5, "No month to show", transform=axes.transAxes, ha="center", fontsize=look.text
        )
    return figure


def render(chart: RunChart, fmt: str, size: str = WIDE) -> bytes:
    """The chart as SVG or PNG bytes."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}")
    figure = draw(chart, size)
    buffer = io.BytesIO()
    if fmt == "png":
        FigureCanvasAgg(figure).print_png(buffer)  # type: ignore[no-untyped-call]
    else:
        # No date in the SVG, so the same chart renders to the same bytes.
        FigureCanvasSVG(figure).print_svg(  # type: ignore[no-untyped-call]
            buffer, metadata={"Date": None}
        )
    return buffer.getvalue()
