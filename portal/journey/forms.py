"""Stage forms as the browser posts them and as the portal renders them again: dates in three
inputs, multi-value fields as checkboxes, fields that apply only given another answer, and the
conflict view's two candidates of each field. Forms reach this module as a mapping of posted names
to values (a werkzeug MultiDict or anything with `get` and `getlist`): no Flask request here.
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Any

from werkzeug.datastructures import MultiDict

if TYPE_CHECKING:
    from portal.journey.versions import Conflict

from kpis import dataset as ds
from portal.journey.rules import ValueProblem, format_value, parse_value
from portal.models.contacts import NOT_DONE_REASONS

REGISTRATION_FIELDS = (
    ("nhs_number", "date_of_birth", "sex", "postcode", "care_home_resident")
    + ds.DIRECT_CARE_FIELDS
    + ds.STAGES["identification"]
)
PATIENT_DETAIL_FIELDS = (
    "date_of_birth",
    "sex",
    "postcode",
    "care_home_resident",
    "date_of_death",
) + ds.DIRECT_CARE_FIELDS
NEW_EPISODE_FIELDS = ds.STAGES["identification"]
DATE_PARTS = ("day", "month", "year")

# Fields of the follow-up forms that are not dataset fields: why a follow-up was not done
# (issue 18). Shown after the "done" question, only when it is No.
NOT_DONE_REASON = {stage: f"{stage}_not_done_reason" for stage in ("followup16", "followup52")}
FORM_CHOICES = {name: NOT_DONE_REASONS for name in NOT_DONE_REASON.values()}
FORM_LABELS = {
    "followup16_not_done_reason": "Why the contact was not done",
    "followup52_not_done_reason": "Why the follow-up was not done",
}


def stage_fields(stage: str) -> tuple[str, ...]:
    """The fields a stage's form shows and saves, in their order."""
    fields = ds.STAGES[stage]
    if stage in NOT_DONE_REASON:
        return (fields[0], NOT_DONE_REASON[stage], *fields[1:])
    return fields


# Fields that apply only given another answer of the same stage: the form hides them otherwise,
# and a value left in a hidden field is discarded rather than refused (the user cannot see it).
APPLIES_WHEN = {
    "dxa_not_recommended_reason": ("dxa_status", "Not recommended"),
    "dxa_date": ("dxa_status", "Recommended"),
    "t_score": ("dxa_status", "Recommended"),
    "followup16_date": ("followup16_done", "Yes"),
    "followup52_date": ("followup52_done", "Yes"),
    # The new fractures' detail at 12 months (issue 19).
    **dict.fromkeys(ds.REFRACTURE_DETAIL_FIELDS, ("refracture", "Yes")),
    "followup16_not_done_reason": ("followup16_done", "No"),
    "followup52_not_done_reason": ("followup52_done", "No"),
}

# Conflict views post each candidate under these prefixes and the user's pick under CHOOSE.
YOURS, THEIRS, CHOOSE = "yours::", "theirs::", "choose::"


# A posted form (werkzeug's MultiDict: request.form is an ImmutableMultiDict, one of them).
FormData = MultiDict[str, str]


def field_of(input_name: str) -> str:
    """The dataset field a posted input belongs to (a date comes as field-day/-month/-year)."""
    base, _, part = input_name.rpartition("-")
    return base if base and part in DATE_PARTS else input_name


def date_text(name: str, form: FormData, label: str | None = None) -> str:
    """The day, month and year inputs of a date joined as D/M/YYYY for the dataset parser."""
    label = label or ds.LABELS[name]
    parts = {part: (form.get(f"{name}-{part}") or "").strip() for part in DATE_PARTS}
    if not any(parts.values()):
        return ""
    missing = [part for part in DATE_PARTS if not parts[part]]
    if missing:
        raise ValueProblem(f"{label} must include a {' and a '.join(missing)}")
    if not all(value.isdigit() for value in parts.values()):
        raise ValueProblem(f"{label} must be a real date written in numbers, like 12 3 2024")
    if len(parts["year"]) != 4:
        raise ValueProblem(f"{label} must have a four-digit year, like 2024")
    return f"{parts['day']}/{parts['month']}/{parts['year']}"


def read_date(name: str, form: FormData, label: str) -> date | None:
    """A date posted in three inputs outside the dataset (a dose, a review); None when empty.
    Raises ValueProblem with the dataset's words for a date that is not one."""
    text = date_text(name, form, label)
    if not text:
        return None
    day, month, year = (int(part) for part in text.split("/"))
    try:
        return date(year, month, day)
    except ValueError:
        raise ValueProblem(f"{label} must be a real date ({text} does not exist)") from None


def read_form(fields: tuple[str, ...], form: FormData) -> tuple[dict[str, Any], dict[str, str]]:
    """Parse the posted inputs of some fields: (values, {field: message} of those refused)."""
    values: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for name in fields:
        if name in FORM_CHOICES:
            chosen = (form.get(name) or "").strip()
            values[name] = chosen if chosen in FORM_CHOICES[name] else None
            if chosen and values[name] is None:
                errors[name] = f"{FORM_LABELS[name]}: choose one of the reasons listed"
            continue
        try:
            if name in ds.DATE_FIELDS:
                text = date_text(name, form)
            elif name in ds.MULTI_VALUE_FIELDS:
                text = ";".join(v.strip() for v in form.getlist(name) if v and v.strip())
            else:
                text = form.get(name) or ""
            values[name] = parse_value(name, text)
        except ValueProblem as problem:
            errors[name] = str(problem)
    for name, (controller, answer) in APPLIES_WHEN.items():
        if name in values and controller in values and values[controller] != answer:
            values[name] = None
    return values, errors


def form_inputs(fields: tuple[str, ...], values: dict[str, Any] | Any) -> MultiDict[str, str]:
    """The inputs a form shows for stored values (a record or a dict), as the browser posts them."""
    inputs: MultiDict[str, str] = MultiDict()
    for name in fields:
        value = values.get(name) if isinstance(values, dict) else getattr(values, name)
        inputs.setlist(name, [])
        if value is None:
            continue
        if name in ds.DATE_FIELDS:
            inputs.add(f"{name}-day", str(value.day))
            inputs.add(f"{name}-month", str(value.month))
            inputs.add(f"{name}-year", str(value.year))
        elif name in ds.MULTI_VALUE_FIELDS:
            inputs.setlist(name, [part for part in str(value).split(";") if part])
        else:
            inputs.add(name, format_value(name, value))
    return inputs


def resolve_conflict_form(form: FormData) -> MultiDict[str, str]:
    """The form a conflict view posts, with each field taken from the side the user picked.

    A field with no pick keeps the stored value ("theirs"): nothing is overwritten silently.
    """
    resolved: MultiDict[str, str] = MultiDict()
    picks: dict[str, str] = {}
    for name, value in form.items(multi=True):
        if name.startswith(CHOOSE):
            picks[name[len(CHOOSE) :]] = YOURS if value == "yours" else THEIRS
    for name, value in form.items(multi=True):
        if name.startswith(CHOOSE):
            continue
        for prefix in (YOURS, THEIRS):
            if name.startswith(prefix):
                inner = name[len(prefix) :]
                if picks.get(field_of(inner), THEIRS) == prefix:
                    resolved.add(inner, value)
                break
        else:
            resolved.add(name, value)
    return resolved


def conflict_inputs(
    fields: tuple[str, ...], values: dict[str, Any], conflicts: list[Conflict]
) -> MultiDict[str, str]:
    """Hidden inputs of a conflict view: merged values, and both candidates of each conflict."""
    conflicting = {conflict.field: conflict for conflict in conflicts}
    inputs = form_inputs(tuple(name for name in fields if name not in conflicting), values)
    for name, conflict in conflicting.items():
        for prefix, value in ((YOURS, conflict.yours), (THEIRS, conflict.theirs)):
            for inner, text in form_inputs((name,), {name: value}).items(multi=True):
                inputs.add(prefix + inner, text)
    return inputs


def parse_version(raw: Any) -> int | None:
    """The record version a form was rendered from, or None when it carries none."""
    try:
        return int(str(raw).strip())
    except (TypeError, ValueError):
        return None
