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


def uk_date(day: date) -> str:
    """A date as the episode page shows it: 12 March 2024."""
    return f"{day.day} {day.strftime('%B %Y')}"


def _window(what: str, opens: date, closes: date, today: date) -> str:
    """A follow-up still waited for, said as it stands today."""
    if today < opens:
        return f"{what} is due from {uk_date(opens)} to {uk_date(closes)}."
    if today <= closes:
        return f"{what} is due now, until {uk_date(closes)}."
    return f"{what} is overdue: it was due from {uk_date(opens)} to {uk_date(closes)}."


def _assessment_timing(episode: Episode, today: date) -> str:
    day90 = episode.fracture_date + timedelta(days=ds.ASSESSMENT_DUE_DAYS)
    late = today > day90
    if episode.assessment_date is None:
        if late:
            return f"The FLS assessment is overdue: it was due by day 90, {uk_date(day90)}."
        return f"The FLS assessment is due by day 90: {uk_date(day90)}."
    words = [f"FLS assessment done on {uk_date(episode.assessment_date)}."]
    if episode.dxa_status == "Recommended":
        if episode.dxa_date is not None:
            words.append(f"DXA done on {uk_date(episode.dxa_date)}.")
        elif late:
            words.append(f"The DXA is overdue: it was due by day 90, {uk_date(day90)}.")
        else:
            words.append(f"The DXA is due by day 90: {uk_date(day90)}.")
    return " ".join(words)


def stage_timing(episode: Episode, stage: str, today: date) -> str | None:
    """The line under a stage's heading saying when it is due, true as of today: nothing is
    called due or overdue once it is done, nor for a patient who has died."""
    if stage not in ("assessment", "followup16", "followup52"):
        return None
    if episode.patient is not None and episode.patient.date_of_death is not None:
        return None
    if stage == "assessment":
        return _assessment_timing(episode, today)
    fracture = episode.fracture_date
    days = ds.FOLLOWUP16_WINDOW_DAYS if stage == "followup16" else ds.FOLLOWUP52_WINDOW_DAYS
    what = "The 12-16 week contact" if stage == "followup16" else "The 12 month follow-up"
    opens, closes = (fracture + timedelta(days=d) for d in days)
    done = getattr(episode, f"{stage}_done")
    if _waiting_followup(episode, stage, closes, today):
        if done == "No":
            return f"{what} is recorded as not made yet; it can be made until {uk_date(closes)}."
        return _window(what, opens, closes, today)
    made_on = getattr(episode, f"{stage}_date")
    if done == "Yes":
        return f"{what} was made{f' on {uk_date(made_on)}' if made_on else ''}."
    return f"{what} is recorded as not made."
