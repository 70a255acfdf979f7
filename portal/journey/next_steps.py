"""What comes next for an episode, in the nurse's words and with its last day: shown beside each
search result and on the episode page."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from kpis import dataset as ds
from portal.models import Episode
from portal.models.contacts import LOST_TO_FOLLOW_UP


@dataclass(frozen=True)
class NextStep:
    what: str
    # The first and last day it is due (None: no window, or nothing left to do).
    opens: date | None = None
    by: date | None = None

    def overdue(self, today: date) -> bool:
        return self.by is not None and today > self.by


def _waiting_followup(episode: Episode, stage: str, closes: date, today: date) -> bool:
    done = getattr(episode, f"{stage}_done")
    reason = getattr(episode, f"{stage}_not_done_reason")
    return not done or (done == "No" and today <= closes and reason != LOST_TO_FOLLOW_UP)


def next_step(episode: Episode, today: date) -> NextStep:
    """The first thing the episode waits for, in journey order."""
    fracture = episode.fracture_date
    if episode.deleted_at is not None:
        return NextStep("Deleted episode")
    if episode.patient is not None and episode.patient.date_of_death is not None:
        return NextStep("Patient has died")
    day90 = fracture + timedelta(days=ds.ASSESSMENT_DUE_DAYS)
    if episode.assessment_date is None:
        return NextStep("FLS assessment", by=day90)
    if episode.dxa_status == "Recommended" and episode.dxa_date is None:
        return NextStep("DXA", by=day90)
    if not episode.bone_therapy:
        return NextStep("Treatment recommendation")
    for stage, what, (opens, closes) in (
        ("followup16", "16-week contact", ds.FOLLOWUP16_WINDOW_DAYS),
        ("followup52", "12-month follow-up", ds.FOLLOWUP52_WINDOW_DAYS),
    ):
        last = fracture + timedelta(days=closes)
        if _waiting_followup(episode, stage, last, today):
            return NextStep(what, opens=fracture + timedelta(days=opens), by=last)
    return NextStep("Nothing: the journey is complete")
