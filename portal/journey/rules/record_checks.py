"""The record as a whole: every cross-field rule of spec/dataset.md over the typed values of one
patient and one episode (required fields, dates in order, none in the future or after death, the
patient 50 or over at the fracture, DXA and follow-up answers that agree).

A stage form merges its parsed values into the stored episode and calls
`check_record(patient, episode, changed=<the stage's fields>)`: every rule is still checked, and
a rule between its field and another stage's (say a fracture date moved after the assessment
date) is reported on its own field, so it shows in that form. The importer calls it on the merged
patient and episode of each row. A change of the patient (date of birth, date of death) is
checked against all of their episodes with `check_patient_dates`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date
from typing import Any

from kpis.dataset import (
    AUDIT_START_DATE,
    DATE_FIELDS,
    EPISODE_FIELDS,
    MAXIMUM_AGE,
    MINIMUM_AGE,
    PATIENT_FIELDS,
)
from portal import clock
from portal.journey.rules.refractures import check_new_fractures
from portal.journey.rules.stages import age_on
from portal.journey.rules.values import field_label, is_empty, uk_date

PATIENT_REQUIRED = ("nhs_number", "date_of_birth", "sex")
EPISODE_REQUIRED = ("fracture_date", "fracture_sites")
EPISODE_DATES = tuple(field for field in EPISODE_FIELDS if field in DATE_FIELDS)
# Dates that cannot come before the fracture they belong to.
AFTER_FRACTURE_DATES = tuple(field for field in EPISODE_DATES if field != "fracture_date")


def _lower_first(text: str) -> str:
    """A label inside a sentence: "Date of DXA" -> "date of DXA" (acronyms kept)."""
    return text[0].lower() + text[1:] if text[:1].isupper() and not text[:3].isupper() else text


class _Problems(dict[str, str]):
    """{field: message}, knowing which fields the user changed.

    A rule between two fields puts its message on the field the user changed, so that it shows
    in the form they are filling in; when both or neither changed, on the rule's usual field.
    The first rule broken on a field wins, rules being checked from the most basic.
    """

    def __init__(self, changed: Iterable[str] | None) -> None:
        super().__init__()
        self.changed = None if changed is None else frozenset(changed)

    def add(self, field: str, message: str) -> None:
        self.setdefault(field, message)

    def on_changed(self, usual: str, usual_message: str, other: str, other_message: str) -> None:
        """Report a broken rule between two fields on the one the user must fix."""
        if self.changed is not None and other in self.changed and usual not in self.changed:
            self.add(other, other_message)
        else:
            self.add(usual, usual_message)


def _check_required(values: Mapping[str, Any], fields: Iterable[str], problems: _Problems) -> None:
    for field in fields:
        if is_empty(values.get(field)):
            problems.add(field, f"{field_label(field)} is required")


def _check_order(
    problems: _Problems, earlier_field: str, earlier: date, later_field: str, later: date
) -> None:
    """`earlier` must not come after `later`; the message names the other field and its date."""
    if earlier <= later:
        return
    problems.on_changed(
        later_field,
        f"{field_label(later_field)} cannot be before the {_lower_first(field_label(earlier_field))} "
        f"({uk_date(earlier)})",
        earlier_field,
        f"{field_label(earlier_field)} cannot be after the {_lower_first(field_label(later_field))} "
        f"({uk_date(later)})",
    )


def _check_fracture_order(problems: _Problems, field: str, day: date, fracture_date: date) -> None:
    """A date of the episode on or after the fracture, in the spec's own words."""
    if day >= fracture_date:
        return
    problems.on_changed(
        field,
        f"{field_label(field)} cannot be before the fracture was diagnosed ({uk_date(fracture_date)})",
        "fracture_date",
        f"{field_label('fracture_date')} cannot be after the {_lower_first(field_label(field))} "
        f"({uk_date(day)})",
    )


def _check_death_order(problems: _Problems, field: str, day: date, died: date) -> None:
    """Nothing of a patient's record happens after their death."""
    if day <= died:
        return
    problems.on_changed(
        field,
        f"{field_label(field)} cannot be after the patient's date of death ({uk_date(died)})",
        "date_of_death",
        f"{field_label('date_of_death')} cannot be before the {_lower_first(field_label(field))} "
        f"({uk_date(day)})",
    )


def _check_age(problems: _Problems, date_of_birth: date, fracture_date: date) -> None:
    """50 or over, and not over 115, on the day the fracture was diagnosed."""
    if date_of_birth > fracture_date:
        problems.on_changed(
            "date_of_birth",
            f"{field_label('date_of_birth')} cannot be after the fracture was diagnosed "
            f"({uk_date(fracture_date)})",
            "fracture_date",
            f"{field_label('fracture_date')} cannot be before the date of birth "
            f"({uk_date(date_of_birth)})",
        )
        return
    age = age_on(date_of_birth, fracture_date)
    if MINIMUM_AGE <= age <= MAXIMUM_AGE:
        return
    rule = (
        f"must be {MINIMUM_AGE} or over" if age < MINIMUM_AGE else f"cannot be over {MAXIMUM_AGE}"
    )
    problems.on_changed(
        "date_of_birth",
        f"The patient {rule} when the fracture was diagnosed ({uk_date(fracture_date)}); "
        f"this date of birth makes them {age}",
        "fracture_date",
        f"The patient {rule} when the fracture was diagnosed; "
        f"born {uk_date(date_of_birth)}, they were {age} on this date",
    )


def _check_patient_alone(patient: Mapping[str, Any], today: date, problems: _Problems) -> None:
    _check_required(patient, PATIENT_REQUIRED, problems)
    born, died = patient.get("date_of_birth"), patient.get("date_of_death")
    if born is not None and born > today:
        problems.add("date_of_birth", f"{field_label('date_of_birth')} cannot be in the future")
    if died is not None:
        if died > today:
            problems.add("date_of_death", f"{field_label('date_of_death')} cannot be in the future")
        if born is not None:
            _check_order(problems, "date_of_birth", born, "date_of_death", died)


def check_record(
    patient: Mapping[str, Any],
    episode: Mapping[str, Any],
    today: date | None = None,
    *,
    changed: Iterable[str] | None = None,
) -> dict[str, str]:
    """Every cross-field rule of dataset.md on the typed values of one patient and one episode.

    Keys are field names; a missing key is an empty value. Returns {field: message} for every
    broken rule, on the field the user must fix. A rule between two fields (a date before the
    fracture, after the death, follow-ups out of order, the age rule) is reported on its usual
    field (the later date, the episode's date, date_of_birth); pass `changed`, the fields the
    user has just changed (a stage form's fields), to report it on the changed one instead, so
    it shows in the form being filled in. Use check_patient_dates when the patient changed.
    """
    today = today or clock.today()
    problems = _Problems(changed)
    _check_patient_alone(patient, today, problems)
    _check_required(episode, EPISODE_REQUIRED, problems)

    fracture_date = episode.get("fracture_date")
    born, died = patient.get("date_of_birth"), patient.get("date_of_death")
    if fracture_date is not None:
        if fracture_date < AUDIT_START_DATE:
            problems.add(
                "fracture_date",
                f"{field_label('fracture_date')} must be on or after {uk_date(AUDIT_START_DATE)}",
            )
        if born is not None:
            _check_age(problems, born, fracture_date)
        for field in AFTER_FRACTURE_DATES:
            day = episode.get(field)
            if day is not None:
                _check_fracture_order(problems, field, day, fracture_date)
    for field in EPISODE_DATES:
        day = episode.get(field)
        if day is None:
            continue
        if day > today:
            problems.add(
                field, f"{field_label(field)} cannot be in the future (today is {uk_date(today)})"
            )
        if died is not None:
            _check_death_order(problems, field, day, died)

    _check_dxa(episode, problems)
    _check_followups(episode, problems)
    check_new_fractures(episode, problems.add)
    return dict(problems)


def _check_dxa(episode: Mapping[str, Any], problems: _Problems) -> None:
    status = episode.get("dxa_status")
    reason_label = field_label("dxa_not_recommended_reason")
    if status == "Not recommended" and is_empty(episode.get("dxa_not_recommended_reason")):
        problems.add(
            "dxa_not_recommended_reason", f"{reason_label} is required when DXA is Not recommended"
        )
    if status != "Not recommended" and not is_empty(episode.get("dxa_not_recommended_reason")):
        problems.add(
            "dxa_not_recommended_reason",
            f"{reason_label} must be empty unless DXA is Not recommended",
        )
    if episode.get("dxa_date") is not None and status != "Recommended":
        problems.add(
            "dxa_date", f"{field_label('dxa_date')} can only be given when DXA is Recommended"
        )
    if episode.get("t_score") is not None and episode.get("dxa_date") is None:
        problems.add("t_score", f"{field_label('t_score')} can only be given with the date of DXA")


def _check_followups(episode: Mapping[str, Any], problems: _Problems) -> None:
    for done_field, date_field in (
        ("followup16_done", "followup16_date"),
        ("followup52_done", "followup52_date"),
    ):
        done = episode.get(done_field) == "Yes"
        has_date = episode.get(date_field) is not None
        if done and not has_date:
            problems.add(
                date_field, f"{field_label(date_field)} is required when the follow-up was done"
            )
        if has_date and not done:
            problems.add(
                date_field,
                f"{field_label(date_field)} can only be given when "
                f"{_lower_first(field_label(done_field))} is Yes",
            )
    first, second = episode.get("followup16_date"), episode.get("followup52_date")
    if first is not None and second is not None and second <= first:
        problems.on_changed(
            "followup52_date",
            f"{field_label('followup52_date')} must be after the "
            f"{_lower_first(field_label('followup16_date'))} ({uk_date(first)})",
            "followup16_date",
            f"{field_label('followup16_date')} must be before the "
            f"{_lower_first(field_label('followup52_date'))} ({uk_date(second)})",
        )


def check_patient_dates(
    patient: Mapping[str, Any], episodes: Iterable[Mapping[str, Any]], today: date | None = None
) -> dict[str, str]:
    """The rules of a patient change checked against all of that patient's episodes.

    Required patient fields, date of birth and death not in the future, the age rule (50 or over,
    not over 115) against every episode's fracture_date, and a date of death not before the date
    of birth or any date of any episode. Messages sit on the patient's fields. The caller passes
    the episodes that count (deleted episodes are the caller's choice).
    """
    today = today or clock.today()
    problems = _Problems(PATIENT_FIELDS)
    _check_patient_alone(patient, today, problems)
    born, died = patient.get("date_of_birth"), patient.get("date_of_death")
    for episode in episodes:
        fracture_date = episode.get("fracture_date")
        if born is not None and fracture_date is not None:
            _check_age(problems, born, fracture_date)
        if died is None:
            continue
        for field in EPISODE_DATES:
            day = episode.get(field)
            if day is not None:
                _check_death_order(problems, field, day, died)
    return dict(problems)
