"""The redesigned charts (issue 22): signals marked on the chart itself and explained in the legend
and the text alternative, bands and the national line told apart without colour, the legend below
the plot, no title clipped in the image, and a narrow rendition. Read from the Figure's artists,
never from pixels."""

from __future__ import annotations

from fractions import Fraction

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import PathCollection
from matplotlib.patches import Rectangle

from kpis import charts, plots, runchart
from kpis.definitions import KPI_BY_NUMBER
from kpis.engine import MonthPoint
from kpis.periods import Month, Period
from kpis.spc import anhoej, run_marks

PERIOD = Period.parse("2024-01", "2025-08")


def _points(values, denominator=30):
    points, month = [], Month(2024, 1)
    for value in values:
        n = round(value * denominator / 100)
        points.append(MonthPoint(month, n, denominator, Fraction(100 * n, denominator)))
        month = month.plus(1)
    return points


# 10 months low then 10 months high: one long run (10 > 7 for 20 months) and 1 crossing (< 6).
SHIFT = [50, 53, 47, 50, 57, 53, 50, 47, 53, 50, 80, 83, 87, 80, 77, 83, 80, 87, 83, 80]


def _legend_texts(figure):
    return [t.get_text() for legend in figure.legends for t in legend.get_texts()]


def test_run_marks_find_the_longest_run_and_each_crossing():
    values = [Fraction(v) for v in [1, 2, 9, 8, 9, 9, 1, 5]]  # median 6.5
    marks = run_marks(values)
    assert marks.longest_run == (2, 5)
    assert marks.crossings == [(1, 2), (5, 6)]
    rules = anhoej(values)
    assert rules.longest_run == 4 and rules.crossings == 2
    assert run_marks([]).longest_run is None


def test_months_on_the_median_stay_inside_the_run():
    values = [Fraction(v) for v in [1, 9, 5, 9, 9, 1, 1]]  # median 5: the 5 is left out
    assert run_marks(values).longest_run == (1, 4)


def test_long_run_and_few_crossings_are_marked_on_the_chart_and_explained():
    chart = runchart.build(KPI_BY_NUMBER[5], "AAA", PERIOD, _points(SHIFT), _points([70] * 20))
    assert chart.rules.long_run and chart.rules.few_crossings
    run, crossings = chart.signal_positions()
    assert run == (0, 9) or run == (10, 19)
    assert crossings == [(9, 10)]
    figure = charts.draw(chart)
    axes = figure.axes[0]
    legend = _legend_texts(figure)
    # The long run: a shaded span over its months, named in the legend and on the chart.
    spans = [
        p
        for p in axes.patches
        if isinstance(p, Rectangle) and p.get_label().startswith("Unusually long run")
    ]
    assert len(spans) == 1
    left, right = spans[0].get_x(), spans[0].get_x() + spans[0].get_width()
    assert (left, right) == (run[0] - 0.4, run[1] + 0.4)
    assert any(t.get_text() == "Long run" for t in axes.texts)
    assert "Unusually long run (10 months)" in legend
    # Each crossing: a cross on the median between the two months.
    crosses = [c for c in axes.collections if c.get_label().startswith("Crossing of the median")]
    assert len(crosses) == 1
    assert [tuple(xy) for xy in crosses[0].get_offsets()] == [(9.5, chart.rules.median)]
    assert "Crossing of the median (only 1, too few)" in legend
    # And in words for the text alternative.
    text = chart.text_alternative()
    assert "is shaded" in text and "marked with a cross" in text


def test_months_outside_the_limits_are_ringed_and_explained():
    values = [60] * 8 + [0] + [60] * 3
    chart = runchart.build(KPI_BY_NUMBER[4], "AAA", PERIOD, _points(values))
    assert [m.month.key for m in chart.flagged] == ["2024-09"]
    figure = charts.draw(chart)
    rings = [
        c
        for c in figure.axes[0].collections
        if isinstance(c, PathCollection) and c.get_label().startswith("Outside the control")
    ]
    assert len(rings) == 1
    assert [tuple(xy) for xy in rings[0].get_offsets()] == [(8.0, 0.0)]
    assert "Outside the control limits (ringed)" in _legend_texts(figure)
    assert "Months outside the control limits are ringed." in chart.text_alternative()


def test_no_signal_draws_no_mark():
    values = [60, 70] * 6
    chart = runchart.build(KPI_BY_NUMBER[4], "AAA", PERIOD, _points(values))
    assert not chart.rules.signal and not chart.flagged
    figure = charts.draw(chart)
    legend = _legend_texts(figure)
    assert not any(t.startswith(("Unusually", "Crossing", "Outside")) for t in legend)
    assert chart.marks_words() == []


def test_national_line_and_bands_differ_without_colour():
    chart = runchart.build(KPI_BY_NUMBER[5], "AAA", PERIOD, _points(SHIFT), _points([70] * 20))
    axes = charts.draw(chart).axes[0]
    lines = {line.get_label(): line for line in axes.get_lines()}
    own, national = lines["AAA (solid, dots)"], lines["National (dotted, squares)"]
    assert (own.get_linestyle(), own.get_marker()) == ("-", "o")
    assert (national.get_linestyle(), national.get_marker()) == (":", "s")
    hatches = {p.get_hatch() for p in axes.patches if p.get_label() != "" or p.get_hatch()}
    assert {"/", "."} <= hatches  # red hatched, amber dotted, green plain
    assert {t.get_text() for t in axes.texts} >= {"Green", "Amber", "Red"}


def test_legend_below_the_plot_and_no_title_in_the_image():
    chart = runchart.build(
        KPI_BY_NUMBER[5], "A very long service name " * 4, PERIOD, _points(SHIFT)
    )
    for size in charts.SIZES:
        figure = charts.draw(chart, size)
        axes = figure.axes[0]
        assert axes.get_title(loc="left") == "" and figure.get_suptitle() == ""
        assert axes.get_legend() is None and len(figure.legends) == 1
        renderer = FigureCanvasAgg(figure).get_renderer()
        figure.draw_without_rendering()
        legend_box = figure.legends[0].get_window_extent(renderer)
        plot_box = axes.get_window_extent(renderer)
        assert legend_box.y1 <= plot_box.y0  # under the plot, not beside it
        assert legend_box.x0 >= 0 and legend_box.x1 <= figure.bbox.width  # not clipped


def test_narrow_rendition_is_narrower_with_type_as_large():
    chart = runchart.build(KPI_BY_NUMBER[5], "AAA", PERIOD, _points(SHIFT))
    wide, narrow = charts.draw(chart, charts.WIDE), charts.draw(chart, charts.NARROW)
    assert narrow.get_figwidth() < wide.get_figwidth() / 2
    small = min(t.get_fontsize() for t in narrow.axes[0].get_xticklabels())
    assert small >= 11  # points: about 10 px when 5.4 in is drawn 370 px wide
    assert len(narrow.axes[0].get_xticks()) <= 7
    assert charts.size_of("narrow") == charts.NARROW and charts.size_of("huge") == charts.WIDE


def test_funnel_incidence_and_split_charts_have_the_legend_below_and_a_narrow_rendition():
    curve = plots.draw_incidence(
        "t", [("AAA", [(0, Fraction(0)), (100, Fraction(1, 10))]), ("National", [(0, 0)])], 730
    )
    lines = {line.get_label(): line.get_linestyle() for line in curve.axes[0].get_lines()}
    assert lines == {"AAA (solid)": "-", "National (dotted)": ":"}
    assert len(curve.legends) == 1 and curve.get_suptitle() == ""
    split = plots.draw_split("t", ["KPI 4"], [("Men", [50.0]), ("Women", [60.0])], [55.0], "narrow")
    assert split.get_figwidth() == charts.LOOKS[charts.NARROW].width
    assert len(split.legends) == 1
