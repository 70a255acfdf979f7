"""What the dataset's answers mean for the journey: each stage's status and the fields it must
answer, the worklist dates of an episode, the audited fields still missing, and the derived values
(age, anti-osteoporosis medicine recommended or taken), so every page, worklist, KPI and export
computes them one way."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, timedelta
from typing import Any

from kpis.dataset import (
    ADDED_FIELDS,
    ASSESSMENT_DUE_DAYS,
    AUDITED_FIELDS,
    DRUGS,
    FOLLOWUP16_WINDOW_DAYS,
    FOLLOWUP52_WINDOW_DAYS,
    PATIENT_FIELDS,
    STAGES,
)
from portal.journey.rules.values import is_empty, split_values

# The derived values read dicts (forms, import rows) and Patient/Episode objects alike.
Record = Mapping[str, Any] | Any


def _get(record: Record, field: str) -> Any:
    if isinstance(record, Mapping):
        return record.get(field)
    return getattr(record, field, None)


def age_on(date_of_birth: date, day: date) -> int:
    """Age in whole years on a day, comparing month and day (born 29 Feb: a year older on 1 March)."""
    before_birthday = (day.month, day.day) < (date_of_birth.month, date_of_birth.day)
    return day.year - date_of_birth.year - before_birthday


def aom_recommended(bone_therapy: str | None) -> bool:
    """True when the bone therapy recommendation holds at least one drug (an anti-osteoporosis medicine)."""
    return any(part in DRUGS for part in split_values(bone_therapy))


def on_aom(therapy: str | None) -> bool:
    """True when therapy16 or therapy52 is a drug (the patient is on an anti-osteoporosis medicine)."""
    return therapy in DRUGS


def stage_fields_that_apply(stage: str, episode: Record) -> tuple[str, ...]:
    """The fields of a stage a complete stage must answer, given the other answers.

    - identification: every field.
    - assessment: assessment_date and every Yes/No/choice question. The measurements (height,
      weight, FRAX) and the DXA result (dxa_date, t_score) never block completion: a
      "Recommended" DXA may be booked but not yet done (the "DXA recommended, not done" worklist
      follows it), and a measurement may not have been taken. The reason for no DXA applies
      only when DXA is Not recommended.
    - treatment: both fields.
    - followup16 / followup52: the "done" question; the date, therapy and the last question
      (strength and balance / refracture) apply only when the follow-up was done: a contact
      that did not happen cannot tell what the patient takes.

    The fields added after dataset.md's first 35 columns (ADDED_FIELDS: type of fracture, FRAX
    hip, NOGG category, falls-risk items, the new fractures' detail) never block completion.
    """
    if stage == "identification":
        return _dataset_fields("identification")
    if stage == "assessment":
        fields = [
            "assessment_date",
            "previous_fracture",
            "parental_hip_fracture",
            "smoker",
            "on_bone_therapy_at_fracture",
            "dxa_status",
        ]
        if _get(episode, "dxa_status") == "Not recommended":
            fields.append("dxa_not_recommended_reason")
        fields += ["falls_assessed", "falls_referred"]
        return tuple(fields)
    if stage == "treatment":
        return STAGES["treatment"]
    if stage in ("followup16", "followup52"):
        done, *rest = _dataset_fields(stage)
        return (done, *rest) if _get(episode, done) == "Yes" else (done,)
    raise KeyError(f"{stage!r} is not a journey stage")


def _dataset_fields(stage: str) -> tuple[str, ...]:
    return tuple(field for field in STAGES[stage] if field not in ADDED_FIELDS)


def stage_status(stage: str, episode: Record) -> str:
    """The status of a stage: "not started", "in progress" or "complete".

    Not started: no field of the stage answered. Complete: every field that applies (see
    stage_fields_that_apply) answered. In progress: anything between.
    """
    applies = stage_fields_that_apply(stage, episode)
    if all(not is_empty(_get(episode, field)) for field in applies):
        return "complete"
    if all(is_empty(_get(episode, field)) for field in STAGES[stage]):
        return "not started"
    return "in progress"


def missing_audited_fields(patient: Record, episode: Record) -> list[str]:
    """The 17 audited fields (KPI 1) that are empty, in dataset.md order; Not known is an answer."""
    return [
        field
        for field in AUDITED_FIELDS
        if is_empty(_get(patient if field in PATIENT_FIELDS else episode, field))
    ]


def stage_windows(fracture_date: date) -> dict[str, date]:
    """The worklist dates of an episode (all inclusive):

    - day90: last day before assessment and a recommended DXA become overdue
      (ASSESSMENT_DUE_DAYS after the fracture);
    - followup16_opens / followup16_closes: the 12-16 week contact is due
      (FOLLOWUP16_WINDOW_DAYS);
    - followup52_opens / followup52_closes: the 12-month follow-up is due
      (FOLLOWUP52_WINDOW_DAYS).
    """
    return {
        "day90": fracture_date + timedelta(days=ASSESSMENT_DUE_DAYS),
        "followup16_opens": fracture_date + timedelta(days=FOLLOWUP16_WINDOW_DAYS[0]),
        "followup16_closes": fracture_date + timedelta(days=FOLLOWUP16_WINDOW_DAYS[1]),
        "followup52_opens": fracture_date + timedelta(days=FOLLOWUP52_WINDOW_DAYS[0]),
        "followup52_closes": fracture_date + timedelta(days=FOLLOWUP52_WINDOW_DAYS[1]),
    }
