"""Bulk import of fracture episodes from CSV (dataset.md, "CSV: import and export").

Two steps, so that nothing is half-written and nurses' saves are not held up:

1. `check_file` (check.py) reads the whole file once, checks every row with the dataset rules
   (portal.journey.rules, the one validation layer the forms use too; cells.py reads the cells)
   against the stored records, and builds a plan: the patients met and the episodes to add and
   update, kept on disk (spool.py) so that memory does not grow with the file, and a report
   (report.py: counts, refusals, a preview of the changes). Nothing is written.
2. `apply_plan` (apply.py) writes the plan in one short transaction of bulk statements, after
   checking that no episode or patient it updates changed since step 1 (their `version`), with one
   audit event per patient and per episode holding its field changes and one for the import.

`import_file` does both, for the command line and for the page's queued jobs (portal.background).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from sqlalchemy.exc import IntegrityError

from portal.audit.actor import Actor
from portal.models import ImportJob, Service
from portal.records.importing.apply import StaleRecords, apply_plan
from portal.records.importing.check import check_file
from portal.records.importing.report import ImportReport, Refusal
from portal.records.importing.spool import ImportPlan

__all__ = [
    "ImportPlan",
    "ImportReport",
    "Refusal",
    "StaleRecords",
    "apply_plan",
    "check_file",
    "import_file",
]


def import_file(
    path: Path,
    actor: Actor,
    *,
    service: Service | None,
    file_name: str | None = None,
    keep_valid: bool = False,
    dry_run: bool = False,
    max_bytes: int | None = None,
    job: ImportJob | None = None,
    on_refusal: Callable[[Refusal], None] | None = None,
    progress: Callable[[int, int], None] | None = None,
    before_write: Callable[[], None] | None = None,
) -> ImportReport:
    """Check a file, then write it unless refused (all-or-nothing) or a dry run.

    The caller commits when `report.written` is true; with anything refused and keep_valid
    false, or a dry run, nothing is written. Raises FileRefused or StaleRecords.
    `before_write` runs first in the writing transaction (a queued job checks there that it is
    still its own, and takes its row); whatever it raises stops the import, nothing written.
    """
    plan = check_file(
        path,
        service=service,
        file_name=file_name,
        max_bytes=max_bytes,
        on_refusal=on_refusal,
        progress=progress,
    )
    try:
        report = plan.report
        report.keep_valid, report.dry_run = keep_valid, dry_run
        if dry_run or (report.refused and not keep_valid):
            return report
        if before_write is not None:
            before_write()
        try:
            apply_plan(
                plan,
                actor,
                service_id=service.id if service is not None else None,
                job=job,
            )
        except IntegrityError as error:
            # Someone added one of these patients or episodes after the check.
            raise StaleRecords(
                "Records were added while the file was being checked: nothing was written. "
                "Import the file again"
            ) from error
        return report
    finally:
        plan.close()
