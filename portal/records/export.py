"""Export of a service's episodes as canonical CSV (dataset.md, "Export")."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from sqlalchemy import Row, func, select

from kpis.csv_output import SafeWriter
from kpis.dataset import CSV_COLUMNS, DIRECT_CARE_FIELDS, PATIENT_FIELDS
from kpis.sql import unindexed
from portal.audit import events as audit
from portal.audit.actor import Actor
from portal.extensions import db
from portal.journey.rules import format_value
from portal.models import Episode, Patient, Service

_BATCH = 1000


def count_episodes(service: Service) -> int:
    """How many episodes of the service an export writes (deleted ones are left out)."""
    return db.session.execute(
        select(func.count())
        .select_from(Episode)
        .where(Episode.service_id == service.id, Episode.deleted_at.is_(None))
    ).scalar_one()


def record_export(
    actor: Actor, service: Service, count: int, *, via: str = "page", kind: str = "CSV"
) -> None:
    """Audit an export of patient-level data (the caller commits before streaming)."""
    audit.record(
        actor,
        "export",
        service_id=service.id,
        entity_type="service",
        entity_id=service.id,
        detail=f"records export ({via}): {count} episodes as {kind}",
    )


def live_episode_values(service: Service, names: Sequence[str]) -> Iterator[Row[Any]]:
    """The named patient and episode fields of every live episode of the service, by
    fracture_date then nhs_number (the canonical export's and the FLS-DB file's order)."""
    of_patient = set(PATIENT_FIELDS) | set(DIRECT_CARE_FIELDS)
    columns = [getattr(Patient if f in of_patient else Episode, f) for f in names]
    statement = (
        select(*columns)
        .join(Patient, Patient.id == Episode.patient_id)
        # Every live episode of the service, read in stored order then sorted (kpis.sql.unindexed).
        .where(
            Episode.service_id == service.id, unindexed(Episode.__table__.c.deleted_at).is_(None)
        )
        .order_by(Episode.fracture_date, Patient.nhs_number, Episode.id)
        .execution_options(yield_per=_BATCH)
    )
    yield from db.session.execute(statement)


def export_rows(service: Service) -> Iterator[list[str]]:
    """The header, then one canonical row per live episode, by fracture_date then nhs_number."""
    yield list(CSV_COLUMNS)
    # The columns in CSV_COLUMNS order: fields added later come after dataset.md's 43.
    names = CSV_COLUMNS[1:]
    code = service.code
    for row in live_episode_values(service, names):
        yield [code] + [format_value(name, value) for name, value in zip(names, row, strict=True)]


def export_csv(service: Service, progress: Callable[[int], None] | None = None) -> Iterator[str]:
    """The export as chunks of CSV text (LF line ends), for streaming to a response or stdout;
    text cells neutralised, numbers kept (kpis/csv_output.py)."""
    buffer = io.StringIO()
    writer = SafeWriter(buffer)
    for number, row in enumerate(export_rows(service)):
        writer.writerow(row)
        if number % _BATCH == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
            if progress is not None and number:
                progress(_BATCH)
    yield buffer.getvalue()
