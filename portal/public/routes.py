"""Public pages (no sign-in; every endpoint of the blueprint `public` is public): the benchmarks
table for a year and the public run charts, with values of fewer than 5 suppressed."""

from __future__ import annotations

from flask import Blueprint, Response, abort, render_template, request
from markupsafe import Markup

from kpis.charts import FORMATS, size_of
from kpis.definitions import BAND_WORDS, KPI, KPI_BY_NUMBER, KPIS
from kpis.periods import Period
from kpis.splits import SPLIT_BY_NAME, SPLITS
from portal import clock
from portal.kpi_pages import choices, comparison, missed_patients, split_figures
from portal.kpi_pages import figures as kpi_figures
from portal.kpi_pages.caching import cached_fragment
from portal.public import for_patients as plain_words

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
        report = kpi_figures.benchmarks(year, as_of, sort, descending)
        return render_template(
            "public/_benchmarks_table.html",
            report=report,
            missed=missed_patients.missed_table(report),
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
    size = size_of(request.args.get("size"))
    image = kpi_figures.chart_image(
        number, subject, Period.year(year), clock.today(), True, fmt, size
    )
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


# --- fair comparison, who is left behind, the page for patients --------------------------------


def _funnel_kpi(number: int) -> KPI:
    if number not in choices.FUNNEL_KPIS:
        abort(404)
    return KPI_BY_NUMBER[number]


def _split() -> str:
    split = request.args.get("split", "sex")
    return split if split in SPLIT_BY_NAME else "sex"


def _csv(text: str, name: str) -> Response:
    return Response(
        text, mimetype="text/csv", headers={"Content-Disposition": f'attachment; filename="{name}"'}
    )


@bp.get("/funnel/<int:number>")
def funnel(number: int):
    kpi = _funnel_kpi(number)
    year = _year()
    chart = comparison.funnel_chart(number, Period.year(year), clock.today(), None, True)
    return render_template(
        "public/funnel.html", kpi=kpi, chart=chart, year=year, years=choices.years()
    )


@bp.get("/funnel/<int:number>.<fmt>")
def funnel_image(number: int, fmt: str):
    _funnel_kpi(number)
    if fmt not in FORMATS:
        abort(404)
    year = _year()
    size = size_of(request.args.get("size"))
    image = comparison.funnel_image(number, Period.year(year), clock.today(), None, True, fmt, size)
    return Response(image, mimetype=CONTENT_TYPES[fmt])


@bp.get("/funnel/<int:number>.csv")
def funnel_csv(number: int):
    _funnel_kpi(number)
    year = _year()
    chart = comparison.funnel_chart(number, Period.year(year), clock.today(), None, True)
    return _csv(chart.csv(), f"funnel-kpi{number}-{year}.csv")


@bp.get("/outlier-policy")
def outlier_policy():
    return render_template("public/outlier_policy.html")


@bp.get("/<code>/splits")
def splits(code: str):
    subject = _subject(code)
    year = _year()
    split = _split()
    table = split_figures.table(split, subject, Period.year(year), clock.today(), public=True)
    return render_template(
        "public/splits.html",
        table=table,
        split=SPLIT_BY_NAME[split],
        splits=SPLITS,
        code=code.upper(),
        year=year,
        years=choices.years(),
    )


@bp.get("/<code>/splits.<fmt>")
def splits_chart(code: str, fmt: str):
    if fmt not in FORMATS:
        abort(404)
    subject = _subject(code)
    year = _year()
    size = size_of(request.args.get("size"))
    image = split_figures.chart_image(
        _split(), subject, Period.year(year), clock.today(), True, fmt, size
    )
    return Response(image, mimetype=CONTENT_TYPES[fmt])


@bp.get("/<code>/splits.csv")
def splits_csv(code: str):
    subject = _subject(code)
    year = _year()
    table = split_figures.table(_split(), subject, Period.year(year), clock.today(), public=True)
    return _csv(table.csv(), f"split-{_split()}-{code.upper()}-{year}.csv")


@bp.get("/<code>/for-patients")
def for_patients(code: str):
    service = _subject(code)
    if service is None:
        abort(404)
    year = _year()
    page = plain_words.plain_page(service, year, clock.today())
    return render_template("public/for_patients.html", page=page, years=choices.years())
