"""Public pages (no sign-in; every endpoint of the blueprint `public` is public): the benchmarks
table for a year and the public run charts, with values of fewer than 5 suppressed."""

from __future__ import annotations

from flask import Blueprint, Response, abort, render_template, request
from markupsafe import Markup

from kpis.charts import FORMATS
from kpis.definitions import BAND_WORDS, KPI_BY_NUMBER, KPIS
from kpis.periods import Period
from portal import clock
from portal.kpi_pages import choices
from portal.kpi_pages import figures as kpi_figures
from portal.kpi_pages.caching import cached_fragment

bp = Blueprint("public", __name__)

CONTENT_TYPES = {"svg": "image/svg+xml", "png": "image/png"}


def _year() -> int:
    years = choices.years()
    text = request.args.get("year", "")
    if not text:
        return years[1] if len(years) > 1 else years[0]  # the last whole year
    try:
        year = int(text)
    except ValueError:
        abort(404)
    if year not in years:
        abort(404)
    return year


def _subject(code: str):
    """A service by code, or None for the national chart (`ALL`)."""
    if code.upper() == choices.NATIONAL:
        return None
    service = choices.find_service(code)
    if service is None:
        abort(404)
    return service


def _kpi(number: int):
    kpi = KPI_BY_NUMBER.get(number)
    if kpi is None:
        abort(404)
    return kpi


@bp.get("/")
def benchmarks():
    year = _year()
    sort = request.args.get("sort", "code")
    if sort not in kpi_figures.SORT_KEYS:
        sort = "code"
    descending = request.args.get("order") == "desc"
    as_of = clock.today()

    def table() -> str:
        return render_template(
            "public/_benchmarks_table.html",
            report=kpi_figures.benchmarks(year, as_of, sort, descending),
            year=year,
            sort=sort,
            descending=descending,
            kpis=KPIS,
            band_words=BAND_WORDS,
        )

    what = {"page": "benchmarks_table", "year": year, "sort": sort, "desc": descending}
    return render_template(
        "public/benchmarks.html",
        table=Markup(cached_fragment(what, as_of, table)),
        year=year,
        years=choices.years(),
        sort=sort,
        descending=descending,
        kpis=KPIS,
    )


@bp.get("/<int:year>.csv")
def benchmarks_csv(year: int):
    if year not in choices.years():
        abort(404)
    report = kpi_figures.benchmarks(year, clock.today())
    return Response(
        kpi_figures.benchmarks_csv(report),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="fls-benchmarks-{year}.csv"'},
    )


@bp.get("/<code>/<int:number>")
def run_chart(code: str, number: int):
    kpi = _kpi(number)
    subject = _subject(code)
    year = _year()
    chart = kpi_figures.run_chart(number, subject, Period.year(year), clock.today(), True)
    return render_template(
        "public/run_chart.html",
        kpi=kpi,
        chart=chart,
        code=code.upper(),
        year=year,
        years=choices.years(),
    )


@bp.get("/<code>/<int:number>/chart.<fmt>")
def chart_image(code: str, number: int, fmt: str):
    _kpi(number)
    if fmt not in FORMATS:
        abort(404)
    subject = _subject(code)
    year = _year()
    image = kpi_figures.chart_image(number, subject, Period.year(year), clock.today(), True, fmt)
    return Response(image, mimetype=CONTENT_TYPES[fmt])


@bp.get("/<code>/<int:number>/data.csv")
def chart_csv(code: str, number: int):
    _kpi(number)
    subject = _subject(code)
    year = _year()
    chart = kpi_figures.run_chart(number, subject, Period.year(year), clock.today(), True)
    return Response(
        chart.csv(),
        mimetype="text/csv",
        headers={
            "Content-Disposition": f'attachment; filename="kpi{number}-{code.upper()}-{year}.csv"'
        },
    )
