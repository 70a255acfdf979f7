"""What the CSV import does for the nurse's day (issue 18): the direct-care columns' names kept
in their folded search form, a hospital number that names one patient of a service, and the
warnings of accepted rows (unusual dates, a follow-up "not done" before its window closed), listed
in the import's report and never refused (dataset.md accepts them)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import date, timedelta
from typing import Any

from sqlalchemy import select, tuple_

from kpis import dataset as ds
from portal.extensions import db
from portal.journey import unusual_dates
from portal.journey.rules import uk_date
from portal.journey.rules.direct_care import fold_name
from portal.models import Patient

SEARCH_COLUMNS = ("given_name_search", "family_name_search")
WARNINGS_KEPT = 1000


def search_names(values: Mapping[str, Any]) -> dict[str, str | None]:
    """The folded names the search compares, for a patient's row."""
    return {
        "given_name_search": fold_name(values.get("given_name")),
        "family_name_search": fold_name(values.get("family_name")),
    }


class HospitalNumbers:
    """Who holds each hospital number a file names: the stored patients (loaded a chunk at a
    time) and the file's accepted rows."""

    def __init__(self) -> None:
        self.owner: dict[tuple[int, str], str] = {}
        self.line: dict[tuple[int, str], int] = {}

    def load(self, rows: Iterable[Any]) -> None:
        """The stored holders of the hospital numbers these rows (importing.cells.ReadRow) name."""
        wanted = {
            (row.service_id, row.values["hospital_number"])
            for row in rows
            if row.service_id is not None and row.values.get("hospital_number")
        } - set(self.owner)
        if not wanted:
            return
        pairs = list(wanted)
        for start in range(0, len(pairs), 500):
            part = pairs[start : start + 500]
            for service_id, number, nhs in db.session.execute(
                select(Patient.service_id, Patient.hospital_number, Patient.nhs_number).where(
                    tuple_(Patient.service_id, Patient.hospital_number).in_(part)
                )
            ):
                if number is not None:
                    self.owner[(service_id, number)] = nhs

    def problems(
        self, service_id: int, nhs: str, typed: Mapping[str, Any], column_of: Callable[[str], str]
    ) -> list[tuple[str, str]]:
        """A hospital number another patient of the service already holds."""
        number = typed.get("hospital_number")
        if not number:
            return []
        owner = self.owner.get((service_id, number))
        if owner is None or owner == nhs:
            return []
        where = (
            f"line {self.line[(service_id, number)]}"
            if (service_id, number) in self.line
            else "a stored patient"
        )
        return [
            (
                column_of("hospital_number"),
                f"Hospital number {number} is already another patient's in this service ({where})",
            )
        ]

    def claim(self, line: int, service_id: int, nhs: str, typed: Mapping[str, Any]) -> None:
        number = typed.get("hospital_number")
        if number and (service_id, number) not in self.owner:
            self.owner[(service_id, number)] = nhs
            self.line[(service_id, number)] = line


def warn(
    report: Any,
    line: int,
    column_of: Callable[[str], str],
    stored: Mapping[str, Any] | None,
    episode: Mapping[str, Any],
    today: date,
) -> None:
    """List what an accepted row brings that a form would have asked about."""
    found = list(unusual_dates.brought(stored or {}, episode).items())
    fracture = episode.get("fracture_date")
    for stage, (_opens, closes) in (
        ("followup16", ds.FOLLOWUP16_WINDOW_DAYS),
        ("followup52", ds.FOLLOWUP52_WINDOW_DAYS),
    ):
        done = f"{stage}_done"
        if episode.get(done) != "No" or (stored or {}).get(done) == "No" or fracture is None:
            continue
        last = fracture + timedelta(days=closes)
        if today <= last:
            found.append(
                (
                    done,
                    f"Not done recorded while the window is open (until {uk_date(last)}): the "
                    "episode stays on the worklist until the window closes",
                )
            )
    for field, message in found:
        report.warned += 1
        if len(report.warnings) < WARNINGS_KEPT:
            report.warnings.append({"line": line, "column": column_of(field), "reason": message})
