"""A worklist as the nurse takes it away: the audit of a download, and the CSV of a whole list (leads only), written through the portal's one CSV writer so that a text
cell a spreadsheet would run as a formula is neutralised (security.md)."""

from __future__ import annotations

from kpis.csv_output import csv_text as safe_csv_text
from portal.audit import events as audit
from portal.audit.actor import Actor
from portal.journey.rules import format_value
from portal.journey.worklists import Page
from portal.models import Service

HEADER = (
    "nhs_number",
    "given_name",
    "family_name",
    "age",
    "phone",
    "fracture_date",
    "days_since_fracture",
    "fracture_sites",
    "due",
    "due_by",
    "status",
    "last_attempt_date",
    "last_attempt",
)


def _described(page: Page) -> str:
    """What was listed: the list, its status filter, whether an identifying filter was used (never
    what was typed in it) and how many rows."""
    parts = [page.worklist.key]
    if page.status:
        parts.append(f"status {page.status}")
    if page.identifying:
        parts.append("filtered by NHS number or name")
    return f"worklist {' '.join(parts)}: {page.total} episodes"


def record_download(actor: Actor, service: Service, page: Page) -> None:
    audit.record(
        actor,
        "export",
        service_id=service.id,
        entity_type="service",
        entity_id=service.id,
        detail=f"{_described(page)} as CSV ({len(page.rows)} rows)",
    )


def rows(page: Page) -> list[list[str]]:
    """The header and one row per listed episode, as text cells."""
    table = [list(HEADER)]
    for row in page.rows:
        attempt = row.last_attempt
        status = (
            f"{row.missing} missing"
            if page.worklist.key == "incomplete"
            else (page.worklist.overdue_label if row.overdue else page.worklist.due_label)
        )
        table.append(
            [
                row.nhs_number,
                row.given_name or "",
                row.family_name or "",
                "" if row.age is None else str(row.age),
                row.phone or "",
                format_value("fracture_date", row.fracture_date),
                str(row.days),
                format_value("fracture_sites", row.fracture_sites),
                row.task,
                format_value("fracture_date", row.due_by),
                status,
                format_value("fracture_date", attempt.made_on) if attempt else "",
                f"{attempt.method}: {attempt.outcome}" if attempt else "",
            ]
        )
    return table


def csv_text(page: Page) -> str:
    """The CSV of a whole list, through the portal's one CSV writer (kpis/csv_output.py: text
    cells neutralised)."""
    header, *body = rows(page)
    return safe_csv_text(header, body)
