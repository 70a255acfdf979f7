"""Dates that make sense (issue 18): dates the dataset allows but that are unusual enough to be a
typing error. A stage form saves them only once the nurse has confirmed a warning that says what
is unusual; the confirmation is kept in the history with the change. The CSV import accepts them
and lists the same warnings in its report.

- a 12-16 week contact dated outside day 84-112 after the fracture;
- a 12-month follow-up dated outside day 336-392;
- a first FLS contact after the FLS assessment;
- a DXA more than a year after the fracture.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, timedelta
from typing import Any

from kpis import dataset as ds
from portal.journey.rules import uk_date

# The confirmation a form posts: the warnings (by field) the nurse has seen and confirmed.
CONFIRM_FIELD = "confirm_dates"
# Where the history keeps a confirmation (beside the fields of the change it came with).
CONFIRMED_KEY = "_unusual_dates_confirmed"
DXA_WITHIN_DAYS = 365

_WINDOWS = {
    "followup16_date": ("12-16 week contact", ds.FOLLOWUP16_WINDOW_DAYS),
    "followup52_date": ("12 month follow-up", ds.FOLLOWUP52_WINDOW_DAYS),
}


def warnings(episode: Mapping[str, Any]) -> dict[str, str]:
    """{field: what is unusual} for the unusual dates of an episode's values."""
    found: dict[str, str] = {}
    fracture: date | None = episode.get("fracture_date")
    if fracture is not None:
        for field, (what, (opens, closes)) in _WINDOWS.items():
            day = episode.get(field)
            if day is None:
                continue
            days = (day - fracture).days
            if not opens <= days <= closes:
                found[field] = (
                    f"The {what} is dated {uk_date(day)}, day {days} after the fracture: its "
                    f"window is day {opens} to day {closes} "
                    f"({uk_date(fracture + timedelta(days=opens))} to "
                    f"{uk_date(fracture + timedelta(days=closes))})"
                )
        dxa = episode.get("dxa_date")
        if dxa is not None and (dxa - fracture).days > DXA_WITHIN_DAYS:
            found["dxa_date"] = (
                f"The DXA is dated {uk_date(dxa)}, more than a year after the fracture "
                f"({uk_date(fracture)})"
            )
    first, assessed = episode.get("identification_date"), episode.get("assessment_date")
    if first is not None and assessed is not None and first > assessed:
        found["identification_date"] = (
            f"The first FLS contact ({uk_date(first)}) is after the FLS assessment "
            f"({uk_date(assessed)})"
        )
    return found


def brought(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, str]:
    """The warnings a change brings: those of `after` that `before` did not already have."""
    earlier = warnings(before)
    return {field: text for field, text in warnings(after).items() if earlier.get(field) != text}


def confirmed(posted: str | None) -> set[str]:
    """The warnings (fields) a posted confirmation covers."""
    return {part for part in (posted or "").split(";") if part}


def confirmation_value(found: Mapping[str, str]) -> str:
    """What the confirmation box posts for these warnings."""
    return ";".join(sorted(found))
