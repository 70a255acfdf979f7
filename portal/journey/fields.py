"""How each dataset field is shown in a form (NHS.UK patterns): the widget, its options and hint.

The allowed values come from kpis.dataset; this module only decides the presentation.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from kpis import dataset as ds
from portal.journey.forms import APPLIES_WHEN, DATE_PARTS, FORM_CHOICES, FORM_LABELS

HINTS = {
    "nhs_number": "10 digits, for example 485 777 3456. Spaces and dashes are fine.",
    "postcode": "For example, SW1A 2AA",
    "fracture_date": "The date the index fracture was diagnosed, for example 12 3 2024",
    "fracture_sites": "Choose one to three sites",
    "height_cm": "Between 100 and 230",
    "weight_kg": "Between 25 and 250",
    "t_score": "Lowest of hip and spine, between -7.0 and 4.0, one decimal",
    "frax_major_percent": "10-year probability, 0 to 100",
    "dxa_status": "Recommended covers ordered, booked and done",
    "dxa_not_recommended_reason": "Only when DXA is not recommended",
    "dxa_date": "Only when DXA is recommended. For example, 12 3 2024",
    "bone_therapy": "One or more drugs, or exactly one outcome",
    "followup16_date": "Only when the contact was done",
    "followup52_date": "Only when the follow-up was done; after the 12-16 week contact",
    "date_of_death": "Leave empty unless the patient has died",
    # Added with issue 19.
    "fracture_type": "Incidental: found on imaging done for another reason (mostly vertebral)",
    "frax_hip_percent": "10-year probability, 0 to 100",
    "frax_with_bmd": "Whether the FRAX probabilities include the bone mineral density",
    "nogg_risk_category": "As you judged it with the NOGG tool. The portal does not compute FRAX",
    "refracture_count": "Only when there was a new fracture",
    "refracture1_site": "Up to three new fractures, each with its site and, if known, its date",
    "followup16_not_done_reason": "Lost to follow-up needs the service's number of unanswered "
    "contact attempts",
    "followup52_not_done_reason": "Lost to follow-up needs the service's number of unanswered "
    "contact attempts",
    "hospital_number": "Letters and digits, for example RXH123456",
    "phone": "One or two numbers. Separate two numbers with ;",
    "gp_practice": "The name of the practice",
    "gp_practice_code": "Its ODS code: one letter and five digits, for example B86001",
}
DATE_HINT = "For example, 12 3 2024"
NUMBER_WIDTHS = {
    "height_cm": 4,
    "weight_kg": 4,
    "t_score": 4,
    "frax_major_percent": 4,
    "frax_hip_percent": 4,
    "refracture_count": 2,
}
TEXT_WIDTHS = {
    "nhs_number": 10,
    "postcode": 8,
    "hospital_number": 10,
    "gp_practice_code": 5,
    "given_name": 20,
    "family_name": 20,
    "phone": 20,
    "preferred_language": 10,
}
# Long lists read better as a select than as radios.
SELECT_FIELDS = (
    "therapy16",
    "therapy52",
    "mobility_before_fracture",
    "refracture1_site",
    "refracture2_site",
    "refracture3_site",
)
# Fields whose withdrawn drugs are shown only when already chosen (read from an import).
WITH_WITHDRAWN_DRUGS = ("bone_therapy", "therapy16", "therapy52")
OPTIONS = {
    **ds.CHOICES,
    "fracture_sites": ds.FRACTURE_SITES,
    "bone_therapy": ds.DRUGS + ds.THERAPY_OUTCOMES,
    **FORM_CHOICES,
}


@dataclass(frozen=True)
class FieldSpec:
    name: str
    label: str
    kind: str  # date, number, text, radios, checkboxes, select
    options: tuple[str, ...]
    hint: str
    width: int | None
    # (controlling field, answer) when the field applies only given another answer.
    shown_when: tuple[str, str] | None
    # Options after which an "or" divider is shown (outcomes that never mix with drugs).
    exclusive_from: str | None = None
    # Options no longer offered, shown only when already chosen (strontium ranelate).
    withdrawn: tuple[str, ...] = ()


@cache
def spec(name: str) -> FieldSpec:
    """The presentation of one field (built once per field: forms render it often)."""
    if name in ds.DATE_FIELDS:
        kind = "date"
    elif name in ds.NUMBER_FIELDS:
        kind = "number"
    elif name in ds.MULTI_VALUE_FIELDS:
        kind = "checkboxes"
    elif name in SELECT_FIELDS:
        kind = "select"
    elif name in OPTIONS:
        kind = "radios"
    else:
        kind = "text"
    return FieldSpec(
        name=name,
        label=ds.LABELS.get(name) or FORM_LABELS[name],
        kind=kind,
        options=tuple(OPTIONS.get(name, ())),
        hint=HINTS.get(name, DATE_HINT if kind == "date" else ""),
        width=NUMBER_WIDTHS.get(name, TEXT_WIDTHS.get(name)),
        shown_when=APPLIES_WHEN.get(name),
        exclusive_from=ds.THERAPY_OUTCOMES[0] if name == "bone_therapy" else None,
        withdrawn=ds.WITHDRAWN_DRUGS if name in WITH_WITHDRAWN_DRUGS else (),
    )


@cache
def input_names(name: str) -> tuple[str, ...]:
    """The names a field's controls post: a date posts its day, month and year."""
    if spec(name).kind == "date":
        return tuple(f"{name}-{part}" for part in DATE_PARTS)
    return (name,)


@cache
def anchor(name: str) -> str:
    """The id the error summary links to: the first input of the field."""
    known = name in ds.LABELS or name in FORM_LABELS
    kind = spec(name).kind if known and name != "service_code" else "text"
    if kind == "date":
        return f"{name}-day"
    if kind in ("radios", "checkboxes"):
        return f"{name}-0"
    return name
