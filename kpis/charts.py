"""Run charts drawn with matplotlib's object-oriented API (a `Figure` on the Agg canvas, never
pyplot: pyplot keeps global state that leaks between requests). Large type and thick lines so a
chart reads on a projector; the band colours of the portal's stylesheet behind the data."""

from __future__ import annotations

import io
import math

import matplotlib
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.backends.backend_svg import FigureCanvasSVG
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


def draw(chart: RunChart) -> Figure:
    """The chart as a matplotlib Figure."""
    figure = Figure(figsize=(11, 6), dpi=100, layout="constrained")
    axes = figure.add_subplot()
    months = chart.months
    x = list(range(len(months)))
    values = [math.nan if m.value is None else float(m.value) for m in months]
    finite = [v for v in values if not math.isnan(v)]
    national = [math.nan if m.national is None else float(m.national) for m in months]
    highest = max([*finite, *[v for v in national if not math.isnan(v)], 100.0])
    top = 100.0 if highest <= 100 else highest * 1.08

    for low, high, band in _band_regions(chart, top):
        axes.axhspan(low, high, color=BAND_COLOURS[band], alpha=0.10, linewidth=0)

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
            label="Control limits",
        )
        axes.step(x, lower, where="mid", color=LIMIT_COLOUR, linestyle="--", linewidth=1.8)
    if chart.centre is not None and months:
        label = "Centre line (p-bar)" if chart.is_p_chart else "Median"
        axes.axhline(chart.centre, color="#212b32", linewidth=2, label=label)
    if chart.has_national:
        axes.plot(
            x, national, color=NATIONAL_COLOUR, linestyle=":", linewidth=2.5, label="National"
        )
    axes.plot(
        x, values, color=LINE_COLOUR, linewidth=3, marker="o", markersize=7, label=chart.subject
    )
    flagged = [(i, values[i]) for i, m in enumerate(months) if m.flagged]
    if flagged:
        axes.scatter(
            [i for i, _ in flagged],
            [v for _, v in flagged],
            s=220,
            facecolors="none",
            edgecolors=FLAG_COLOUR,
            linewidths=3,
            zorder=5,
            label="Outside the limits",
        )

    axes.set_ylim(0, top)
    axes.set_xlim(-0.5, max(len(months) - 0.5, 0.5))
    step = max(1, math.ceil(len(months) / 12))
    axes.set_xticks(
        x[::step], [m.month.label() for m in months][::step], rotation=45, ha="right", fontsize=13
    )
    axes.tick_params(axis="y", labelsize=13)
    axes.set_ylabel("Per cent", fontsize=15)
    axes.set_title(chart.title, fontsize=17, loc="left")
    axes.grid(axis="y", color="#d8dde0", linewidth=1)
    axes.spines[["top", "right"]].set_visible(False)
    if months:
        axes.legend(fontsize=12, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    if not finite:
        axes.text(0.5, 0.5, "No month to show", transform=axes.transAxes, ha="center", fontsize=16)
    return figure


def render(chart: RunChart, fmt: str) -> bytes:
    """The chart as SVG or PNG bytes."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}")
    figure = draw(chart)
    buffer = io.BytesIO()
    if fmt == "png":
        FigureCanvasAgg(figure).print_png(buffer)  # type: ignore[no-untyped-call]
    else:
        # No date in the SVG, so the same chart renders to the same bytes.
        FigureCanvasSVG(figure).print_svg(  # type: ignore[no-untyped-call]
            buffer, metadata={"Date": None}
        )
    return buffer.getvalue()
