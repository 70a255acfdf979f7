"""What a KPI page or command asks for: the period, the as-of date and the service, checked, with
the reason in words when one cannot be used."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import select

from kpis.periods import EARLIEST_YEAR, LATEST_YEAR, DueCutoffs, Month, Period, PeriodError
from portal import clock, query_values
from portal.extensions import db
from portal.models import Service

FIRST_YEAR = 2016  # the audit takes fractures from 1 January 2016
NATIONAL = "ALL"


class KpiRequestError(ValueError):
    """A period, date or service that cannot be used, with the reason in words."""


def parse_as_of(text: str | None, label: str = "--as-of") -> date:
    """`YYYY-MM-DD`, or today when not given."""
    try:
        return query_values.day(text) or clock.today()
    except query_values.QueryValueError:
        raise KpiRequestError(
            f"{label} {text!r} is not a date like 2025-03-31 (YYYY-MM-DD) from "
            f"{EARLIEST_YEAR} to {LATEST_YEAR}"
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
    # True when no period was asked for: the page opens on the latest fully due months.
    first_view: bool = False

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


def last_month_all_due(as_of: date) -> Month:
    """The latest month in which every KPI has episodes due on `as_of`: every fracture of it at
    least 392 days (the end of the 48-56 week window, KPI 11) before the as-of date."""
    cutoff = DueCutoffs(as_of).due52
    month = Month.of(cutoff)
    return month if month.last_day <= cutoff else month.plus(-1)


def choose_period(args: Mapping[str, str], default_months: int = 12) -> PeriodChoice:
    """The period from a page's query string; a bad value falls back to the default with the
    reason kept for the page (nothing the user typed is lost: it stays in the picker). With no
    period asked for, the page opens on the latest `default_months` months in which every KPI has
    episodes due, so KPI 11 is never empty only for being too recent."""
    now = clock.today()
    first_view = not any(args.get(name) for name in ("kind", "year", "quarter", "from", "to"))
    try:
        due_on = parse_as_of(args.get("as_of"), "As-of date")
    except KpiRequestError:
        due_on = now
    last_month = last_month_all_due(due_on)
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
    year, quarter = now.year, (now.month - 1) // 3 + 1
    try:
        year = query_values.year(args.get("year")) or year
    except query_values.QueryValueError as error:
        errors["year"] = str(error)
    try:
        quarter = (
            query_values.whole_number(args.get("quarter"), low=1, high=4, what="the quarter")
            or quarter
        )
    except query_values.QueryValueError as error:
        errors["quarter"] = str(error)
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
    return PeriodChoice(kind, year, quarter, start, end, as_of, period, errors, first_view)


FUNNEL_KPIS = range(3, 12)  # the proportions of patients: KPIs 3 to 11


def funnel_kpi(text: str) -> int:
    """A KPI a funnel plot can be drawn for (3 to 11), from what was typed."""
    value = text.strip()
    if not re.fullmatch(r"[+-]?\d+", value) or int(value) not in FUNNEL_KPIS:
        raise KpiRequestError(f"--kpi {text!r}: funnel plots are for KPIs 3 to 11")
    return int(value)
