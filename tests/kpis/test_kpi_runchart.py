"""Run chart content (suppression, limits, text alternative, CSV) and drawing (SVG and PNG,
without pyplot)."""

from __future__ import annotations

import subprocess
import sys
from fractions import Fraction

from kpis import charts, runchart
from kpis.definitions import KPI_BY_NUMBER
from kpis.engine import MonthPoint
from kpis.periods import Month, Period

PERIOD = Period.parse("2024-01", "2024-06")


def _points(pairs):
    return [
        MonthPoint(Month(2024, i + 1), n, d, Fraction(100 * n, d)) for i, (n, d) in enumerate(pairs)
    ]


def test_public_chart_leaves_small_months_as_gaps_without_limits():
    points = _points([(5, 10), (1, 4), (6, 10), (9, 10), (0, 3), (5, 10)])
    chart = runchart.build(KPI_BY_NUMBER[4], "AAA", PERIOD, points, public=True)
    gaps = [m.month.key for m in chart.months if m.suppressed]
    assert gaps == ["2024-02", "2024-05"]
    assert all(m.lower is None and m.upper is None for m in chart.months if m.suppressed)
    # p-bar over the months shown only: 25 / 40.
    assert chart.centre == 62.5
    rows = chart.rows()
    assert rows[1]["denominator"] == "fewer than 5" and rows[1]["value"] == ""
    assert "2 month(s) with fewer than 5" in chart.text_alternative()


def test_signed_in_chart_shows_every_month():
    points = _points([(5, 10), (1, 4), (6, 10)])
    chart = runchart.build(KPI_BY_NUMBER[4], "AAA", PERIOD, points, public=False)
    assert not any(m.suppressed for m in chart.months)
    assert chart.centre == 50.0  # 12 / 24


def test_kpi2_is_a_plain_run_chart_on_its_median():
    points = [
        MonthPoint(Month(2024, i + 1), n, Fraction(50), Fraction(2 * n))
        for i, n in enumerate([10, 60, 30])
    ]
    chart = runchart.build(KPI_BY_NUMBER[2], "AAA", PERIOD, points)
    assert not chart.is_p_chart
    assert chart.centre == 60.0  # median of 20, 120, 60
    assert "lower_limit" not in chart.csv().splitlines()[0]
    assert chart.rows()[1]["value"] == "120.0"


def test_csv_and_flags():
    points = _points([(0, 10), (9, 10), (7, 20)])
    national = _points([(1, 2), (1, 2), (1, 2)])
    chart = runchart.build(KPI_BY_NUMBER[9], "AAA", PERIOD, points, national)
    lines = chart.csv().splitlines()
    assert lines[0] == (
        "month,numerator,denominator,value,lower_limit,upper_limit,outside_limits,national"
    )
    assert lines[2] == "2024-02,9,10,90.0,0.0,86.5,yes,50.0"
    assert [m.month.key for m in chart.flagged] == ["2024-02"]


def test_render_svg_and_png():
    points = _points([(5, 10), (1, 4), (6, 10), (9, 10)])
    chart = runchart.build(KPI_BY_NUMBER[3], "AAA", PERIOD, points, _points([(1, 5)] * 4))
    png = charts.render(chart, "png")
    svg = charts.render(chart, "svg")
    assert png.startswith(b"\x89PNG")
    assert b"<svg" in svg
    assert charts.render(chart, "svg") == svg  # no date or random ids: same bytes


def test_empty_chart_renders():
    chart = runchart.build(KPI_BY_NUMBER[5], "AAA", PERIOD, [])
    assert charts.render(chart, "png").startswith(b"\x89PNG")
    assert "no month" in chart.text_alternative()


def test_drawing_never_imports_pyplot():
    code = (
        "import sys\n"
        "from fractions import Fraction\n"
        "from kpis import charts, runchart\n"
        "from kpis.definitions import KPI_BY_NUMBER\n"
        "from kpis.engine import MonthPoint\n"
        "from kpis.periods import Month, Period\n"
        "p = [MonthPoint(Month(2024, 1), 1, 2, Fraction(50))]\n"
        "c = runchart.build(KPI_BY_NUMBER[4], 'A', Period.parse('2024-01', '2024-01'), p)\n"
        "charts.render(c, 'png'); charts.render(c, 'svg')\n"
        "assert 'matplotlib.pyplot' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
