"""KPI figures for the portal: which services a user may see figures for, period choice, and the
cached figures and charts (keyed by what they show and by the data versions of their services)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select

from kpis import engine
from kpis.periods import Month, Period, PeriodError
from portal.extensions import db
from portal.models import Service

LONDON = ZoneInfo("Europe/London")


class KpiRequestError(ValueError):
    """A period, date or service that cannot be used, with the reason in words."""


def today() -> date:
    """Today in Europe/London (dataset.md)."""
    return datetime.now(LONDON).date()


def parse_as_of(text: str | None) -> date:
    """`YYYY-MM-DD`, or today when not given."""
    if text is None or not text.strip():
        return today()
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise KpiRequestError(
            f"--as-of {text!r} is not a date like 2025-03-31 (YYYY-MM-DD)"
        ) from None


def find_service(code: str) -> Service | None:
    """A service by code, in any case."""
    return db.session.scalar(select(Service).where(Service.code == code.strip().upper()))


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
        )
    return to_csv(report, include_national=request.service is None)


__all__ = ["KpiRequestError", "Month", "Period", "export_csv", "export_request", "today"]
