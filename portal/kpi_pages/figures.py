"""KPI figures for the portal: the period a page asks for, the export, and the figures and charts
of the service, run chart, benchmarks and annual report pages, each cached once per change of
the data (keyed by what it shows and by `Service.data_version` of every service it covers)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from fractions import Fraction

from flask import current_app
from sqlalchemy import select

from kpis import charts, engine, runchart
from kpis.cache import FigureCache, cache_key, make_store
from kpis.definitions import AMBER, KPI, KPIS, RED
from kpis.engine import Figure, Report, Row
from kpis.periods import Month, Period, PeriodError
from kpis.recommendations import recommendations_for
from portal import clock
from portal.extensions import db
from portal.models import Service

FIRST_YEAR = 2016  # the audit takes fractures from 1 January 2016
NATIONAL = "ALL"


class KpiRequestError(ValueError):
    """A period, date or service that cannot be used, with the reason in words."""


def parse_as_of(text: str | None, label: str = "--as-of") -> date:
    """`YYYY-MM-DD`, or today when not given."""
    if text is None or not text.strip():
        return clock.today()
    try:
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text.strip()):
            raise ValueError  # fromisoformat also takes 20250331 and week dates: not the contract
        return date.fromisoformat(text.strip())
    except ValueError:
        raise KpiRequestError(
            f"{label} {text!r} is not a date like 2025-03-31 (YYYY-MM-DD)"
        ) from None


def find_service(code: str) -> Service | None:
    """A service by code, in any case."""
    return db.session.scalar(select(Service).where(Service.code == code.strip().upper()))


# --- the export ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportRequest:
    period: Period
    as_of: date
    service: Service | None


def export_request(
    start: str, end: str, as_of: str | None, service_code: str | None
) -> ExportRequest:
    """Check the export's options (cli.md): a bad month, an inverted period, an unknown service or
    a bad as-of date is refused with the reason."""
    try:
        period = Period.parse(start, end)
    except PeriodError as error:
        raise KpiRequestError(str(error)) from None
    day = parse_as_of(as_of)
    service = None
    if service_code is not None:
        service = find_service(service_code)
        if service is None:
            raise KpiRequestError(f"Unknown service {service_code!r}")
    return ExportRequest(period, day, service)


def export_csv(request: ExportRequest) -> str:
    """The export CSV of kpis.md for a checked request."""
    from kpis.export import export_csv as to_csv

    with db.engine.connect() as conn:
        report = engine.report(
            conn,
            request.period,
            request.as_of,
            service_ids=None if request.service is None else [request.service.id],
            include_empty=True,
            national=request.service is None,
        )
    return to_csv(report, include_national=request.service is None)


# --- the period a page asks for -----------------------------------------------------------------


@dataclass
class PeriodChoice:
    """What the period picker holds: a year, a quarter or a run of months, and an as-of date."""

    kind: str
    year: int
    quarter: int
    start: str
    end: str
    as_of: date
    period: Period
    errors: dict[str, str] = field(default_factory=dict)

    def query(self) -> dict[str, str]:
        """The query string that asks for this period again."""
        args = {"kind": self.kind, "as_of": self.as_of.isoformat()}
        if self.kind == "year":
            args["year"] = str(self.year)
        elif self.kind == "quarter":
            args |= {"year": str(self.year), "quarter": str(self.quarter)}
        else:
            args |= {"from": self.start, "to": self.end}
        return args


def years() -> list[int]:
    """The years a picker offers, newest first."""
    return list(range(clock.today().year, FIRST_YEAR - 1, -1))


def choose_period(args: Mapping[str, str], default_months: int = 12) -> PeriodChoice:
    """The period from a page's query string; a bad value falls back to the default with the
    reason kept for the page (nothing the user typed is lost: it stays in the picker)."""
    now = clock.today()
    last_month = Month.of(now).plus(-1)
    default = Period(last_month.plus(1 - default_months), last_month)
    errors: dict[str, str] = {}
    kind = args.get("kind") or "months"
    if kind not in ("year", "quarter", "months"):
        errors["kind"] = "Choose a year, a quarter or a run of months"
        kind = "months"
    try:
        as_of = parse_as_of(args.get("as_of"), "As-of date")
    except KpiRequestError:
        errors["as_of"] = "Enter the as-of date like 2025-03-31"
        as_of = now
    year = _int(args.get("year"), now.year)
    quarter = _int(args.get("quarter"), (now.month - 1) // 3 + 1)
    start = args.get("from") or default.first.key
    end = args.get("to") or default.last.key
    period = default
    try:
        if kind == "year":
            period = Period.year(year)
        elif kind == "quarter":
            period = Period.quarter(year, quarter)
        else:
            period = Period(Month.parse(start, "From"), Month.parse(end, "To"))
    except PeriodError as error:
        errors["from" if kind == "months" else kind] = (
            str(error).replace("--from", "From").replace("--to", "to")
        )
    if period.months > 12 * 12:
        errors["from"] = "Choose at most 12 years"
        period = default
    return PeriodChoice(kind, year, quarter, start, end, as_of, period, errors)


def _int(text: str | None, default: int) -> int:
    try:
        return int(text) if text else default
    except ValueError:
        return default


# --- the cache ----------------------------------------------------------------------------------


def figure_cache() -> FigureCache:
    """The app's cache: Redis when REDIS_URL is set (shared by every worker), else in-process."""
    cache = current_app.extensions.get("kpi_cache")
    if cache is None:
        cache = FigureCache(make_store(current_app.config.get("REDIS_URL")))
        current_app.extensions["kpi_cache"] = cache
    return cache


def _versions() -> dict[int, tuple[str, int]]:
    """Every service's (code, data version), by id."""
    rows = db.session.execute(select(Service.id, Service.code, Service.data_version)).all()
    return {id_: (code, version or 0) for id_, code, version in rows}


def _database() -> str:
    """The database, as part of every key, so two databases never share an entry in one Redis."""
    return db.engine.url.render_as_string(hide_password=True)


def _key(what: dict, versions: dict[int, tuple[str, int]], where: str | None = None) -> str:
    return cache_key(
        what | {"db": where or _database()},
        {f"{id_}:{code}": version for id_, (code, version) in versions.items()},
    )


def _cached(what: dict, compute, versions: dict[int, tuple[str, int]] | None = None):
    """The stored value for what is shown at the current data versions of every service (national
    figures and charts with a national line depend on all of them), else compute and keep it."""
    versions = versions if versions is not None else _versions()
    return figure_cache().get_or_compute(_key(what, versions), compute)


def cached_fragment(what: dict, as_of: date, render) -> str:
    """A rendered piece of a page of figures over every service (HTML without anything of the
    user or session in it), kept until any service's data changes."""
    return _cached(what | {"as_of": as_of, "fragment": True}, render)


def counts_by_service(
    periods: list[Period],
    as_of: date,
    by_month: bool = False,
    versions: dict[int, tuple[str, int]] | None = None,
    only: int | None = None,
) -> list[dict[int, object]]:
    """Each service's counts for each period (or by month), each kept under that service's own
    data version: after a change in one service only that service is counted again, and the
    national figures are pooled from the rest as kept. One list entry per period, mapping every
    service (or `only` that one) to its counts (None without episodes). The periods must not
    overlap."""
    cache = figure_cache()
    versions = versions if versions is not None else _versions()
    keys: dict[tuple[int, int], str] = {}
    where = _database()
    wanted_services = versions if only is None else {only: versions[only]}
    for index, period in enumerate(periods):
        what = {"page": "counts", "period": str(period), "as_of": as_of, "by_month": by_month}
        for sid, version in wanted_services.items():
            keys[(sid, index)] = _key(what | {"service": sid}, {sid: version}, where)
    result: list[dict[int, object]] = [{} for _ in periods]
    missing: list[tuple[int, int]] = []
    for (sid, index), key in keys.items():
        found, value = cache.lookup(key)
        if found:
            result[index][sid] = value
        else:
            missing.append((sid, index))
    if missing:
        services = {sid for sid, _ in missing}
        wanted = sorted({index for _, index in missing})
        # One grouped query: over every service when most are missing (a scan by date is then
        # cheaper than an index search per service), else over the missing ones only.
        scope = None if len(services) * 2 > len(versions) else services
        with db.engine.connect() as conn:
            groups = engine.aggregate_periods(
                conn, [periods[i] for i in wanted], as_of, scope, by_month=by_month
            )
        fresh: dict[tuple[int, int], object] = dict.fromkeys(missing)
        for (sid, position, month), counts in groups.items():
            slot = (sid, wanted[position])
            if slot not in fresh:
                continue
            if by_month:
                fresh[slot] = (fresh[slot] or {}) | {month: counts}
            else:
                fresh[slot] = counts
        for (sid, index), value in fresh.items():
            cache.put(keys[(sid, index)], value)
            result[index][sid] = value
    return result


def _infos() -> dict[int, engine.ServiceInfo]:
    with db.engine.connect() as conn:
        return engine.load_services(conn)


def _report(
    counts: dict[int, object],
    infos: dict[int, engine.ServiceInfo],
    period: Period,
    as_of: date,
    service: Service | None = None,
) -> Report:
    """The report from kept counts: every service's row, or only `service`'s (a service page
    needs its own row and the national one)."""
    present = {sid: c for sid, c in counts.items() if c is not None}
    wanted = None if service is None else [service.id]
    return engine.report_from_counts(
        infos, present, period, as_of, wanted, include_empty=service is not None
    )  # type: ignore[arg-type]


def full_report(period: Period, as_of: date) -> Report:
    """Every service with episodes and the national row (benchmarks, service pages), cached."""
    versions = _versions()

    def compute() -> Report:
        (counts,) = counts_by_service([period], as_of, versions=versions)
        return _report(counts, _infos(), period, as_of)

    what = {"page": "report", "period": str(period), "as_of": as_of}
    return _cached(what, compute, versions)


def _service_row(report: Report, service: Service) -> Row:
    row = report.row_for(service.id)
    if row is not None:
        return row
    info = engine.ServiceInfo(
        service.id, service.code, service.name, service.expected_caseload, service.data_version
    )
    figures = engine.service_figures(
        engine.EMPTY_COUNTS, service.expected_caseload, report.period.months
    )
    return Row(info, figures, 0)


# --- the service KPI page -----------------------------------------------------------------------


def _change(figure: Figure, previous: Figure) -> Fraction | None:
    """Change from the previous period, in percentage points (None when either has no value)."""
    if figure.value is None or previous.value is None:
        return None
    return figure.value - previous.value


@dataclass(frozen=True)
class KpiLine:
    """One KPI on a service's page: this period, the national value, the previous period."""

    kpi: KPI
    figure: Figure
    national: Figure
    previous: Figure

    @property
    def change(self) -> Fraction | None:
        return _change(self.figure, self.previous)


@dataclass
class ServicePage:
    service_code: str
    service_name: str
    period: Period
    previous_period: Period
    as_of: date
    lines: list[KpiLine]
    episodes: int


def service_page(service: Service, period: Period, as_of: date) -> ServicePage:
    """The 11 KPIs of a service for a period: value, numerator and denominator, band, the national
    value for the same period and the change from the previous period."""
    previous = period.previous()
    versions = _versions()

    def compute() -> ServicePage:
        # This service's two periods in one pass over its episodes, then the national column
        # (every service's counts of this period, this one's now kept); the previous period is
        # shown for this service only.
        _, before_counts = counts_by_service(
            [period, previous], as_of, versions=versions, only=service.id
        )
        (now_counts,) = counts_by_service([period], as_of, versions=versions)
        infos = _infos()
        now, before = (
            _report(now_counts, infos, period, as_of, service),
            _report(before_counts, infos, previous, as_of, service),
        )
        row, earlier = _service_row(now, service), _service_row(before, service)
        lines = [
            KpiLine(kpi, row.figures[i], now.national.figures[i], earlier.figures[i])
            for i, kpi in enumerate(KPIS)
        ]
        return ServicePage(service.code, service.name, period, previous, as_of, lines, row.episodes)

    what = {"page": "service", "service": service.id, "period": str(period), "as_of": as_of}
    return _cached(what, compute, versions)


# --- run charts ---------------------------------------------------------------------------------


def monthly_groups(period: Period, as_of: date) -> tuple[engine.MonthlyGroups, dict[int, int]]:
    """Every service's counts by fracture month, and the caseloads: shared (cached) by the run
    charts of every KPI and service for the same months."""
    groups: engine.MonthlyGroups = {}
    (by_service,) = counts_by_service([period], as_of, by_month=True)
    for sid, months in by_service.items():
        for month, counts in (months or {}).items():  # type: ignore[attr-defined]
            groups[(sid, month)] = counts
    caseloads = {sid: info.expected_caseload for sid, info in _infos().items()}
    return groups, caseloads


def run_chart(
    kpi_number: int, service: Service | None, period: Period, as_of: date, public: bool
) -> runchart.RunChart:
    """One KPI month by month for a service (with the national line) or nationally (None)."""
    kpi = KPIS[kpi_number - 1]
    what = {
        "page": "run_chart",
        "kpi": kpi_number,
        "service": service.code if service else NATIONAL,
        "period": str(period),
        "as_of": as_of,
        "public": public,
    }

    def compute() -> runchart.RunChart:
        groups, caseloads = monthly_groups(period, as_of)
        national = engine.series_from_groups(groups, kpi_number, period, caseloads)
        if service is None:
            return runchart.build(kpi, "National", period, national, public=public)
        points = engine.series_from_groups(groups, kpi_number, period, caseloads, service.id)
        return runchart.build(kpi, service.name, period, points, national, public=public)

    return _cached(what, compute)


def chart_image(
    kpi_number: int, service: Service | None, period: Period, as_of: date, public: bool, fmt: str
) -> bytes:
    """The run chart drawn as SVG or PNG; drawn once per change of the data."""
    what = {
        "page": "chart_image",
        "kpi": kpi_number,
        "service": service.code if service else NATIONAL,
        "period": str(period),
        "as_of": as_of,
        "public": public,
        "format": fmt,
    }
    return _cached(
        what,
        lambda: charts.render(run_chart(kpi_number, service, period, as_of, public), fmt),
    )


# --- public benchmarks --------------------------------------------------------------------------


SORT_KEYS = ("code", "name") + tuple(f"kpi{k.number}" for k in KPIS)


def benchmarks(year: int, as_of: date, sort: str = "code", descending: bool = False) -> Report:
    """The benchmarks table for a year: the national row, then a row per service with episodes,
    sorted by code, name or a KPI's value (suppressed and empty values last)."""
    report = full_report(Period.year(year), as_of)
    rows = list(report.rows)
    if sort in ("code", "name"):
        rows.sort(key=lambda r: getattr(r, sort).lower(), reverse=descending)
    elif sort in SORT_KEYS:
        index = int(sort[3:]) - 1

        def key(row: Row):
            figure = row.figures[index]
            hidden = figure.value is None or figure.suppressed
            value = Fraction(0) if hidden else figure.value
            return (hidden, -value if descending else value, row.code)

        rows.sort(key=key)
    return Report(report.period, report.as_of, rows, report.national, report.counts)


def benchmarks_csv(report: Report) -> str:
    """The public table as CSV: suppressed values say "fewer than 5" and show no numbers."""
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(
        ["service_code", "service_name", "year", "kpi", "numerator", "denominator", "value", "band"]
    )
    for row in [report.national, *report.rows]:
        for figure in row.figures:
            if figure.suppressed:
                cells = ["", "", "fewer than 5", "none"]
            else:
                cells = [
                    str(figure.numerator),
                    figure.denominator_text,
                    figure.value_text,
                    figure.band,
                ]
            writer.writerow(
                [row.code, row.name, report.period.first.year, figure.kpi.number, *cells]
            )
    return buffer.getvalue()


# --- the annual report --------------------------------------------------------------------------


@dataclass(frozen=True)
class ReportLine:
    kpi: KPI
    figure: Figure
    previous: Figure
    national: Figure
    recommendations: tuple[str, ...]

    @property
    def change(self) -> Fraction | None:
        return _change(self.figure, self.previous)


@dataclass
class AnnualReport:
    service_code: str
    service_name: str
    year: int
    as_of: date
    lines: list[ReportLine]
    episodes: int

    @property
    def needing_attention(self) -> list[ReportLine]:
        return [line for line in self.lines if line.recommendations]


def annual_report(service: Service, year: int, as_of: date) -> AnnualReport:
    """Each KPI of a service for a year against the previous year and the national figure, with
    recommendations for every amber or red KPI."""
    page = service_page(service, Period.year(year), as_of)
    lines = [
        ReportLine(
            line.kpi,
            line.figure,
            line.previous,
            line.national,
            recommendations_for(line.kpi.number) if line.figure.band in (AMBER, RED) else (),
        )
        for line in page.lines
    ]
    return AnnualReport(service.code, service.name, year, as_of, lines, page.episodes)


def all_services() -> list:
    """Every service's id, code and name, in order of code (an admin's service picker)."""
    query = select(Service.id, Service.code, Service.name).order_by(Service.code)
    return list(db.session.execute(query).all())
