"""Missed patients (issue 20): each service's hip fractures a year, recorded by an admin and
audited, and FLS-DB's estimate of the patients each service misses (kpis/missed.py) for the
benchmarks table."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select, update

from kpis import missed
from kpis.engine import Report
from kpis.missed import Missed
from portal import clock
from portal.audit import events as audit
from portal.audit.actor import Actor
from portal.extensions import db
from portal.kpi_pages.choices import FIRST_YEAR
from portal.models import HipFractureCount, Service

KPI11 = 10  # index of KPI 11 in a row's figures


class HipFractureError(ValueError):
    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


def hip_fractures() -> dict[int, dict[int, int]]:
    """Every recorded figure: {service id: {year: hip fractures}}."""
    rows = db.session.execute(
        select(HipFractureCount.service_id, HipFractureCount.year, HipFractureCount.hip_fractures)
    ).all()
    result: dict[int, dict[int, int]] = {}
    for service_id, year, count in rows:
        result.setdefault(service_id, {})[year] = count
    return result


def clean_year(text: str | int | None) -> int:
    value = str(text if text is not None else "").strip()
    if not value.isdigit() or not FIRST_YEAR <= int(value) <= clock.today().year:
        raise HipFractureError(
            f"Enter a year from {FIRST_YEAR} to {clock.today().year}, like 2024", "year"
        )
    return int(value)


def clean_count(text: str | int | None) -> int:
    value = str(text if text is not None else "").strip()
    if not value.isdigit():
        raise HipFractureError(
            "Enter the number of hip fractures as a whole number, 0 or more", "hip_fractures"
        )
    return int(value)


def record_hip_fractures(
    actor: Actor, service: Service, year: str | int, count: str | int
) -> dict[str, tuple[object, object]]:
    """Record (or correct) a service's hip fractures in a year; audited with the actor. The
    service's data version moves on, so every figure that uses it is computed again."""
    year_value, count_value = clean_year(year), clean_count(count)
    row = db.session.scalar(
        select(HipFractureCount).where(
            HipFractureCount.service_id == service.id, HipFractureCount.year == year_value
        )
    )
    if row is None:
        row = HipFractureCount(service_id=service.id, year=year_value, hip_fractures=count_value)
        db.session.add(row)
        changes: dict[str, tuple[object, object]] = {
            "year": (None, year_value),
            "hip_fractures": (None, count_value),
        }
        action = "create"
    else:
        changes = audit.apply_changes(row, {"hip_fractures": count_value})
        action = "update"
    if changes:
        db.session.flush()
        db.session.execute(
            update(Service)
            .where(Service.id == service.id)
            .values(data_version=Service.data_version + 1)
        )
        audit.record(actor, action, row, changes, service_id=service.id)
    return changes


@dataclass(frozen=True)
class MissedLine:
    code: str
    name: str
    estimate: Missed | None  # None: hip fractures not yet recorded


@dataclass
class MissedTable:
    year: int
    lines: list[MissedLine]
    national: Missed | None
    known: int

    formula = missed.FORMULA

    @property
    def by_code(self) -> dict[str, Missed | None]:
        return {line.code: line.estimate for line in self.lines}


def missed_table(report: Report) -> MissedTable:
    """The estimate for each service of the benchmarks report (and any service whose hip
    fractures are recorded for the year), and for the services whose figure is known, pooled."""
    year = report.period.first.year
    recorded = hip_fractures()
    on_treatment = {
        row.service.id: row.figures[KPI11].numerator for row in report.rows if row.service
    }
    services = db.session.execute(select(Service.id, Service.code, Service.name)).all()
    lines = []
    for service_id, code, name in sorted(services, key=lambda s: s.code):
        yearly = recorded.get(service_id, {})
        if service_id not in on_treatment and year not in yearly:
            continue
        estimate = missed.for_period(report.period, yearly, on_treatment.get(service_id, 0))
        lines.append(MissedLine(code, name, estimate))
    known = [line.estimate for line in lines if line.estimate is not None]
    return MissedTable(year, lines, missed.national(known), len(known))
