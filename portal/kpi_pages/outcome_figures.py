"""Outcome figures for the portal (spec/outcomes.md): the export, and each service's follow-up
of its index patients, kept once per change of that service's data (caching.per_service)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from kpis import charts, counting, export, outcomes, plots
from kpis.outcomes import FollowUp, OutcomeFigure
from kpis.periods import Period
from portal.extensions import db
from portal.kpi_pages.caching import cached, data_versions, per_service
from portal.kpi_pages.choices import NATIONAL, ExportRequest
from portal.models import Service


def export_csv(request: ExportRequest) -> str:
    """The outcomes export of outcomes.md for a checked request: four rows per service with an
    index patient, in order of code, then the national rows; or the one service asked for."""
    with db.engine.connect() as conn:
        ids = None if request.service is None else [request.service.id]
        groups = outcomes.follow_ups(conn, request.period, request.as_of, ids)
        infos = counting.load_services(conn)
    if request.service is not None:
        rows = [(request.service.code, groups.get(request.service.id, FollowUp()))]
    else:
        ordered = sorted((infos[sid].code, group) for sid, group in groups.items())
        rows = [*ordered, (NATIONAL, outcomes.pooled(groups.values()))]
    return export.outcomes_csv(request.period, rows)


def follow_ups(period: Period, as_of: date) -> dict[int, FollowUp | None]:
    """Every service's follow-up of its index patients in the period (None without any), each
    kept under that service's own data version."""

    def compute(scope: set[int] | None) -> dict[int, FollowUp]:
        with db.engine.connect() as conn:
            return outcomes.follow_ups(conn, period, as_of, scope)

    what = {"page": "outcome_counts", "period": str(period), "as_of": as_of}
    return per_service(what, compute)


@dataclass(frozen=True)
class OutcomeLine:
    """One measure on a service's page: the service's figure and the national one."""

    figure: OutcomeFigure
    national: OutcomeFigure


@dataclass
class ServiceOutcomes:
    service_code: str
    service_name: str
    period: Period
    as_of: date
    lines: list[OutcomeLine]
    # Patients still followed without an event at 0, 3, 6, 12, 18 and 24 months (day: number).
    at_risk: list[tuple[int, int]]
    national_at_risk: list[tuple[int, int]]

    def text_alternative(self) -> str:
        """The curve in words: the two refracture measures of the service and nationally."""
        parts = [
            f"Cumulative incidence of another fracture after the first, {self.service_name} "
            f"(solid line) and every service (dotted line), {self.period.label()}."
        ]
        for line in self.lines:
            if line.figure.measure.kind != "refracture":
                continue
            mine = "no data" if line.figure.value is None else f"{line.figure.value_text}%"
            theirs = "no data" if line.national.value is None else f"{line.national.value_text}%"
            parts.append(
                f"{line.figure.measure.label}: {mine} ({line.figure.events} fractures, "
                f"{line.figure.at_risk} still at risk), national {theirs}."
            )
        return " ".join(parts)


AT_RISK_DAYS = (0, 91, 182, 365, 547, 730)


def service_outcomes(service: Service, period: Period, as_of: date) -> ServiceOutcomes:
    """The four measures of a service beside the national ones, and the numbers at risk."""
    versions = data_versions()

    def compute() -> ServiceOutcomes:
        groups = follow_ups(period, as_of)
        own = groups.get(service.id) or FollowUp()
        national = outcomes.pooled(g for g in groups.values() if g is not None)
        lines = [
            OutcomeLine(mine, theirs)
            for mine, theirs in zip(outcomes.figures(own), outcomes.figures(national), strict=True)
        ]
        return ServiceOutcomes(
            service.code,
            service.name,
            period,
            as_of,
            lines,
            [(day, outcomes.at_risk_at(own, day)) for day in AT_RISK_DAYS],
            [(day, outcomes.at_risk_at(national, day)) for day in AT_RISK_DAYS],
        )

    what = {"page": "service_outcomes", "service": service.id, "period": str(period)}
    return cached(what | {"as_of": as_of}, compute, versions)


def national_follow_up(period: Period, as_of: date) -> FollowUp:
    """The national pool of index patients."""
    return outcomes.pooled(g for g in follow_ups(period, as_of).values() if g is not None)


CURVE_DAYS = 730  # the curve runs to the 24-month horizon


def curve_image(
    service: Service, period: Period, as_of: date, fmt: str, size: str = charts.WIDE
) -> bytes:
    """The cumulative incidence of refracture of a service and nationally, drawn once per change
    of the data."""

    def draw() -> bytes:
        groups = follow_ups(period, as_of)
        own = groups.get(service.id) or FollowUp()
        national = outcomes.pooled(g for g in groups.values() if g is not None)
        figure = plots.draw_incidence(
            f"Another fracture after the first: {service.name}, {period.label()}",
            [
                (service.name, outcomes.curve(own, CURVE_DAYS)),
                ("National", outcomes.curve(national, CURVE_DAYS)),
            ],
            CURVE_DAYS,
            size,
        )
        return plots.to_bytes(figure, fmt)

    what = {
        "page": "incidence_image",
        "service": service.id,
        "period": str(period),
        "as_of": as_of,
        "format": fmt,
        "size": size,
    }
    return cached(what, draw)


def service_csv(service: Service, period: Period, as_of: date) -> str:
    """A service's four measures and the national ones, in the columns of the export."""
    groups = follow_ups(period, as_of)
    own = groups.get(service.id) or FollowUp()
    national = outcomes.pooled(g for g in groups.values() if g is not None)
    return export.outcomes_csv(period, [(service.code, own), (NATIONAL, national)])
