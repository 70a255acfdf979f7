"""Every rule of the FLS dataset (spec/dataset.md), in one place.

The HTMX stage forms and the CSV importer share this module so that a value refused in one is
refused in the other, with the same words. It is pure Python: no Flask request, no database.

Two steps, both used by forms and importer alike:

1. **One value at a time**: `parse_value(field, raw)` turns the text a user typed (a form field)
   or a CSV cell into the stored Python value (`date`, `float`, canonical enumeration spelling,
   `;`-joined multi-value in dataset.md order) or `None` when empty, with every leniency of
   dataset.md's "Values" section. A refused value raises `ValueProblem`, whose `str()` is the
   plain-words message to show beside the field (forms) or after `line N: <column>:` (importer).
   `parse_values(raw)` does this for a whole form or row and collects the problems per field.

2. **The record as a whole**: `check_record(patient, episode)` applies every cross-field rule to
   the typed values of one patient and one episode and returns `{field: message}`, the message
   placed on the field the user must fix. A stage form merges its parsed values into the stored
   episode and calls `check_record(patient, episode, changed=<the stage's fields>)`: every rule
   is still checked, and a rule between its field and another stage's (say a fracture date moved
   after the assessment date) is reported on its own field, so it shows in that form. The
   importer calls it on the merged patient and episode of each row. A change of the patient
   (date of birth, date of death) is checked against all of their episodes with
   `check_patient_dates`.

Derived values (`aom_recommended`, `on_aom`, `stage_status`, `missing_audited_fields`,
`stage_windows`, `age_on`) and the export spelling (`format_value`) live here too, so every
page, worklist, KPI and export computes them one way.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from kpis.dataset import (
    ASSESSMENT_DUE_DAYS,
    AUDIT_START_DATE,
    AUDITED_FIELDS,
    CHOICES,
    DATE_FIELDS,
    DRUG_SYNONYMS,
    DRUGS,
    EPISODE_FIELDS,
    FOLLOWUP16_WINDOW_DAYS,
    FOLLOWUP52_WINDOW_DAYS,
    FRACTURE_SITE_SYNONYMS,
    FRACTURE_SITES,
    LABELS,
    MAX_FRACTURE_SITES,
    MAXIMUM_AGE,
    MINIMUM_AGE,
    MULTI_VALUE_FIELDS,
    NOT_KNOWN_SYNONYMS,
    NUMBER_FIELDS,
    PATIENT_FIELDS,
    STAGES,
    THERAPY_OUTCOMES,
    YES_NO_SHORTHANDS,
    YES_NO_UNKNOWN,
)
from portal import clock

NOT_KNOWN = "Not known"


class ValueProblem(ValueError):
    """A single value refused; `str()` is the plain-words message naming the field and the rule."""


def uk_date(day: date) -> str:
    """A date as UK users read it in messages: 12/03/2024."""
    return day.strftime("%d/%m/%Y")


def _label(field: str) -> str:
    return LABELS.get(field, field.replace("_", " ").capitalize())


# Characters a spreadsheet leaves around or inside a cell that str.strip() does not remove.
_INVISIBLE = dict.fromkeys(map(ord, "\ufeff\u200b\u200c\u200d\u2060"), None)


def _clean(raw: str | None) -> str | None:
    """Trimmed text (non-breaking and invisible spaces too) with inner spaces collapsed, or None."""
    if raw is None:
        return None
    text = str(raw)
    if not text.isascii():
        text = text.translate(_INVISIBLE)
    # split() without arguments splits on every Unicode space, the non-breaking one included.
    return " ".join(text.split()) or None


# NHS number -----------------------------------------------------------------------------------

_NHS_SEPARATORS = re.compile(r"[\s\-\u2010-\u2015]")


def _nhs_check_digit(first_nine: str) -> int | None:
    """The modulus-11 check digit of the first nine digits; None when no number can have one."""
    total = sum(
        int(digit) * weight for digit, weight in zip(first_nine, range(10, 1, -1), strict=True)
    )
    check = 11 - total % 11
    if check == 11:
        return 0
    return None if check == 10 else check


def clean_nhs_number(raw: str) -> str:
    """The 10 digits of an NHS (or H&C) number typed with or without spaces and dashes.

    Raises ValueProblem for a wrong length, anything but digits, a failed modulus-11 check digit,
    or a number of one repeated digit (0000000000 passes the check digit but is no one's number).
    """
    label = _label("nhs_number")
    text = _clean(raw)
    if text is None:
        raise ValueProblem(f"{label} is required")
    digits = _NHS_SEPARATORS.sub("", text)
    if not digits.isascii() or not digits.isdigit():
        raise ValueProblem(f"{label} must contain only digits (spaces and dashes are allowed)")
    if len(digits) != 10:
        raise ValueProblem(f"{label} must be 10 digits (this has {len(digits)})")
    if len(set(digits)) == 1:
        raise ValueProblem(f"{label} cannot be one digit repeated ({digits})")
    if _nhs_check_digit(digits[:9]) != int(digits[9]):
        raise ValueProblem(
            f"{label} is not valid: its check digit does not match (check for a typing error)"
        )
    return digits


# Postcode -------------------------------------------------------------------------------------

# Outward code (A9, A99, AA9, AA99, A9A, AA9A) then inward code (9AA); GIR 0AA is Girobank's.
_POSTCODE = re.compile(r"^([A-Z]{1,2}[0-9][A-Z0-9]?|GIR)([0-9][A-Z]{2})$")


def normalise_postcode(raw: str) -> str:
    """A UK postcode in upper case with one space before the inward code (sw1a2aa -> SW1A 2AA).

    Raises ValueProblem when the text is not shaped like a UK postcode.
    """
    text = _clean(raw)
    if text is None:
        raise ValueProblem(f"{_label('postcode')} is empty")
    compact = text.replace(" ", "").upper()
    match = _POSTCODE.match(compact)
    if match is None or (match.group(1) == "GIR" and match.group(2) != "0AA"):
        raise ValueProblem(f"{_label('postcode')} must be a UK postcode, like SW1A 2AA")
    return f"{match.group(1)} {match.group(2)}"


# Dates ----------------------------------------------------------------------------------------

# re.ASCII: \d means 0-9 only, not every script's digits.
_ISO_DATE = re.compile(
    r"^(\d{4})-(\d{1,2})-(\d{1,2})(?:[ T](\d{1,2}:\d{2}(?::\d{2}(?:\.0+)?)?))?$", re.ASCII
)
_UK_DATE = re.compile(
    r"^(\d{1,2})/(\d{1,2})/(\d+)(?: (\d{1,2}:\d{2}(?::\d{2}(?:\.0+)?)?))?$", re.ASCII
)
_MIDNIGHT = re.compile(r"^0?0:00(?::00(?:\.0+)?)?$", re.ASCII)


def _parse_date(field: str, text: str) -> date:
    iso = _ISO_DATE.match(text)
    uk = _UK_DATE.match(text) if iso is None else None
    if iso is not None:
        year, month, day, time_part = iso.groups()
    elif uk is not None:
        day, month, year, time_part = uk.groups()
        if len(year) != 4:
            raise ValueProblem(f"{_label(field)} must have a four-digit year, like 12/03/2024")
    else:
        raise ValueProblem(f"{_label(field)} must be a date like 12/03/2024 or 2024-03-12")
    if time_part is not None and not _MIDNIGHT.match(time_part):
        raise ValueProblem(f"{_label(field)} must be a date without a time of day")
    try:
        return date(int(year), int(month), int(day))
    except ValueError:
        raise ValueProblem(
            f"{_label(field)} must be a real date ({text.split(' ')[0]} does not exist)"
        ) from None


# Numbers --------------------------------------------------------------------------------------

_NUMBER = re.compile(r"^([+\-\u2212]?)(\d+(?:\.\d+)?|\.\d+)$", re.ASCII)
_DECIMAL_COMMA = re.compile(r"^[+\-\u2212]?\d*,\d+$", re.ASCII)
_WITH_UNIT = re.compile(
    r"^[+\-\u2212]?(?:\d+(?:[.,]\d+)?|[.,]\d+) ?[^\d\s.,+\-\u2212]+\.?$", re.ASCII
)


def _format_bound(field: str, bound: float) -> str:
    return format_value(field, float(bound))


def _parse_number(field: str, text: str) -> float:
    low, high, decimals = NUMBER_FIELDS[field]
    match = _NUMBER.match(text)
    if match is None:
        if _DECIMAL_COMMA.match(text):
            raise ValueProblem(f"{_label(field)} must use a decimal point, not a comma")
        if _WITH_UNIT.match(text):
            raise ValueProblem(f"{_label(field)} must be a number without a unit")
        raise ValueProblem(f"{_label(field)} must be a number")
    sign, digits = match.groups()
    number = Decimal(digits)
    # Trailing zeros carry no precision claim (-1.70 is -1.7); anything finer is refused, never rounded.
    fraction = digits.partition(".")[2].rstrip("0")
    if len(fraction) > decimals:
        places = "one decimal place" if decimals == 1 else f"{decimals} decimal places"
        raise ValueProblem(f"{_label(field)} can have at most {places}")
    if sign in ("-", "\u2212"):
        number = -number
    if not low <= number <= high:
        raise ValueProblem(
            f"{_label(field)} must be between {_format_bound(field, low)} and {_format_bound(field, high)}"
        )
    return float(number) + 0.0  # + 0.0 turns -0.0 into 0.0


# Enumerations ---------------------------------------------------------------------------------


def _fold(text: str) -> str:
    return text.casefold()


def _spellings(allowed: tuple[str, ...]) -> dict[str, str]:
    """{case-folded spelling: canonical value} for a list of allowed values and their synonyms."""
    spellings = {}
    if NOT_KNOWN in allowed:
        spellings.update(dict.fromkeys(NOT_KNOWN_SYNONYMS, NOT_KNOWN))
    if set(allowed) == set(YES_NO_UNKNOWN):
        spellings.update(YES_NO_SHORTHANDS)
    spellings.update({name: drug for name, drug in DRUG_SYNONYMS.items() if drug in allowed})
    spellings.update({_fold(value): value for value in allowed})
    return spellings


# Built once: an import looks up hundreds of thousands of cells.
_SPELLINGS: dict[tuple[str, ...], dict[str, str]] = {
    allowed: _spellings(allowed)
    for allowed in (*CHOICES.values(), FRACTURE_SITES, DRUGS, THERAPY_OUTCOMES)
}


def _choice(text: str, allowed: tuple[str, ...]) -> str | None:
    """The canonical spelling of text among allowed (any case, with the dataset's synonyms)."""
    spellings = _SPELLINGS.get(allowed) or _spellings(allowed)
    return spellings.get(_fold(text))


def _one_of(field: str, text: str) -> str:
    allowed = CHOICES[field]
    value = _choice(text, allowed)
    if value is None:
        raise ValueProblem(f"{_label(field)} must be one of: {', '.join(allowed)}")
    return value


def _parts(text: str) -> list[str]:
    """The non-empty parts of a `;`-joined cell (a trailing `;` is not a value)."""
    return [part for part in (_clean(piece) for piece in text.split(";")) if part]


def _parse_fracture_sites(text: str) -> str:
    label = _label("fracture_sites")
    typed: list[str] = []
    mapped: set[str] = set()
    for part in _parts(text):
        site = _choice(part, FRACTURE_SITES)
        if site is not None:
            if site in typed:
                raise ValueProblem(f"{label} cannot name a site twice ({site})")
            typed.append(site)
        elif _fold(part) in FRACTURE_SITE_SYNONYMS:
            # FLS-DB 2023 put several of our sites under one name: repeats it creates collapse.
            mapped.add(FRACTURE_SITE_SYNONYMS[_fold(part)])
        else:
            raise ValueProblem(f"{label}: {part} is not one of {', '.join(FRACTURE_SITES)}")
    sites = set(typed) | mapped
    if not sites:
        raise ValueProblem(f"{label} must name at least one site")
    if len(sites) > MAX_FRACTURE_SITES:
        raise ValueProblem(f"{label} can name at most {MAX_FRACTURE_SITES} sites")
    return ";".join(site for site in FRACTURE_SITES if site in sites)


def _parse_bone_therapy(text: str) -> str:
    label = _label("bone_therapy")
    drugs: list[str] = []
    outcomes: list[str] = []
    for part in _parts(text):
        drug = _choice(part, DRUGS)
        if drug is not None:
            if drug in drugs:
                raise ValueProblem(f"{label} cannot name a drug twice ({drug})")
            drugs.append(drug)
            continue
        outcome = _choice(part, THERAPY_OUTCOMES)
        if outcome is None:
            raise ValueProblem(
                f"{label}: {part} is not a drug ({', '.join(DRUGS)}) "
                f"or an outcome ({', '.join(THERAPY_OUTCOMES)})"
            )
        outcomes.append(outcome)
    if drugs and outcomes:
        raise ValueProblem(f"{label} cannot mix a drug with an outcome ({outcomes[0]})")
    if len(outcomes) > 1:
        raise ValueProblem(f"{label} can hold only one outcome")
    if outcomes:
        return outcomes[0]
    if not drugs:
        raise ValueProblem(f"{label} must name a drug or an outcome")
    return ";".join(drug for drug in DRUGS if drug in drugs)


_SERVICE_CODE = re.compile(r"^[A-Z0-9]{3}$")


def _parse_service_code(text: str) -> str:
    code = text.upper()
    if not _SERVICE_CODE.match(code) or code == "ALL":
        raise ValueProblem(f"{_label('service_code')} must be 3 letters or digits (never ALL)")
    return code


PARSEABLE_FIELDS = ("service_code",) + PATIENT_FIELDS + EPISODE_FIELDS


def parse_value(field: str, raw: str | list[str] | tuple[str, ...] | None) -> Any:
    """One raw text value (form field or CSV cell) of a dataset field as its stored value.

    A multi-value field also takes a list of raw values (the ticked checkboxes of a form).

    Returns None when the text is empty after trimming. Dates come back as `date`, numbers as
    `float`, enumerations in dataset.md's spelling, fracture_sites and bone_therapy `;`-joined in
    dataset.md's order. Raises ValueProblem with a plain-words message when the value is refused,
    and KeyError for a name that is not a dataset field (a programming error, not a user's).
    """
    if field not in PARSEABLE_FIELDS:
        raise KeyError(f"{field!r} is not a field of the FLS dataset")
    if field in MULTI_VALUE_FIELDS and isinstance(raw, list | tuple):
        raw = ";".join(raw)  # ticked checkboxes, as request.form.getlist gives them
    text = _clean(raw)
    if text is None:
        return None
    if field == "nhs_number":
        return clean_nhs_number(text)
    if field == "postcode":
        return normalise_postcode(text)
    if field == "service_code":
        return _parse_service_code(text)
    if field in DATE_FIELDS:
        return _parse_date(field, text)
    if field in NUMBER_FIELDS:
        return _parse_number(field, text)
    if field == "fracture_sites":
        return _parse_fracture_sites(text)
    if field == "bone_therapy":
        return _parse_bone_therapy(text)
    return _one_of(field, text)


def parse_values(raw: Mapping[str, str | None]) -> tuple[dict[str, Any], dict[str, str]]:
    """Parse every field of a form or row: (values that parsed, {field: message} of those refused).

    Fields not of the dataset are ignored; the caller keeps the raw text to show again.
    """
    values: dict[str, Any] = {}
    problems: dict[str, str] = {}
    for field, text in raw.items():
        if field not in PARSEABLE_FIELDS:
            continue
        try:
            values[field] = parse_value(field, text)
        except ValueProblem as problem:
            problems[field] = str(problem)
    return values, problems


# Derived values -------------------------------------------------------------------------------


def age_on(date_of_birth: date, day: date) -> int:
    """Age in whole years on a day, comparing month and day (born 29 Feb: a year older on 1 March)."""
    before_birthday = (day.month, day.day) < (date_of_birth.month, date_of_birth.day)
    return day.year - date_of_birth.year - before_birthday


def _split(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [part.strip() for part in value.split(";") if part.strip()]
    return [str(part) for part in value]


def aom_recommended(bone_therapy: str | None) -> bool:
    """True when the bone therapy recommendation holds at least one drug (an anti-osteoporosis medicine)."""
    return any(part in DRUGS for part in _split(bone_therapy))


def on_aom(therapy: str | None) -> bool:
    """True when therapy16 or therapy52 is a drug (the patient is on an anti-osteoporosis medicine)."""
    return therapy in DRUGS


# The derived values read dicts (forms, import rows) and Patient/Episode objects alike.
Record = Mapping[str, Any] | Any


def _get(record: Record, field: str) -> Any:
    if isinstance(record, Mapping):
        return record.get(field)
    return getattr(record, field, None)


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


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
    """
    if stage == "identification":
        return STAGES["identification"]
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
        done, *rest = STAGES[stage]
        return (done, *rest) if _get(episode, done) == "Yes" else (done,)
    raise KeyError(f"{stage!r} is not a journey stage")


def stage_status(stage: str, episode: Record) -> str:
    """The status of a stage: "not started", "in progress" or "complete".

    Not started: no field of the stage answered. Complete: every field that applies (see
    stage_fields_that_apply) answered. In progress: anything between.
    """
    applies = stage_fields_that_apply(stage, episode)
    if all(not _empty(_get(episode, field)) for field in applies):
        return "complete"
    if all(_empty(_get(episode, field)) for field in STAGES[stage]):
        return "not started"
    return "in progress"


def missing_audited_fields(patient: Record, episode: Record) -> list[str]:
    """The 17 audited fields (KPI 1) that are empty, in dataset.md order; Not known is an answer."""
    return [
        field
        for field in AUDITED_FIELDS
        if _empty(_get(patient if field in PATIENT_FIELDS else episode, field))
    ]


def stage_windows(fracture_date: date) -> dict[str, date]:
    """The worklist dates of an episode (all inclusive):

    - day90: last day before assessment and a recommended DXA become overdue;
    - followup16_opens / followup16_closes: the 12-16 week contact is due (days 84..112);
    - followup52_opens / followup52_closes: the 12-month follow-up is due (days 336..392).
    """
    return {
        "day90": fracture_date + timedelta(days=ASSESSMENT_DUE_DAYS),
        "followup16_opens": fracture_date + timedelta(days=FOLLOWUP16_WINDOW_DAYS[0]),
        "followup16_closes": fracture_date + timedelta(days=FOLLOWUP16_WINDOW_DAYS[1]),
        "followup52_opens": fracture_date + timedelta(days=FOLLOWUP52_WINDOW_DAYS[0]),
        "followup52_closes": fracture_date + timedelta(days=FOLLOWUP52_WINDOW_DAYS[1]),
    }


# Cross-field rules ----------------------------------------------------------------------------

PATIENT_REQUIRED = ("nhs_number", "date_of_birth", "sex")
EPISODE_REQUIRED = ("fracture_date", "fracture_sites")
EPISODE_DATES = tuple(field for field in EPISODE_FIELDS if field in DATE_FIELDS)
# Dates that cannot come before the fracture they belong to.
AFTER_FRACTURE_DATES = tuple(field for field in EPISODE_DATES if field != "fracture_date")


def _lower_first(text: str) -> str:
    """A label inside a sentence: "Date of DXA" -> "date of DXA" (acronyms kept)."""
    return text[0].lower() + text[1:] if text[:1].isupper() and not text[:3].isupper() else text


class _Problems(dict):
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
        if _empty(values.get(field)):
            problems.add(field, f"{_label(field)} is required")


def _check_order(
    problems: _Problems, earlier_field: str, earlier: date, later_field: str, later: date
) -> None:
    """`earlier` must not come after `later`; the message names the other field and its date."""
    if earlier <= later:
        return
    problems.on_changed(
        later_field,
        f"{_label(later_field)} cannot be before the {_lower_first(_label(earlier_field))} "
        f"({uk_date(earlier)})",
        earlier_field,
        f"{_label(earlier_field)} cannot be after the {_lower_first(_label(later_field))} "
        f"({uk_date(later)})",
    )


def _check_fracture_order(problems: _Problems, field: str, day: date, fracture_date: date) -> None:
    """A date of the episode on or after the fracture, in the spec's own words."""
    if day >= fracture_date:
        return
    problems.on_changed(
        field,
        f"{_label(field)} cannot be before the fracture was diagnosed ({uk_date(fracture_date)})",
        "fracture_date",
        f"{_label('fracture_date')} cannot be after the {_lower_first(_label(field))} "
        f"({uk_date(day)})",
    )


def _check_death_order(problems: _Problems, field: str, day: date, died: date) -> None:
    """Nothing of a patient's record happens after their death."""
    if day <= died:
        return
    problems.on_changed(
        field,
        f"{_label(field)} cannot be after the patient's date of death ({uk_date(died)})",
        "date_of_death",
        f"{_label('date_of_death')} cannot be before the {_lower_first(_label(field))} "
        f"({uk_date(day)})",
    )


def _check_age(problems: _Problems, date_of_birth: date, fracture_date: date) -> None:
    """50 or over, and not over 115, on the day the fracture was diagnosed."""
    if date_of_birth > fracture_date:
        problems.on_changed(
            "date_of_birth",
            f"{_label('date_of_birth')} cannot be after the fracture was diagnosed "
            f"({uk_date(fracture_date)})",
            "fracture_date",
            f"{_label('fracture_date')} cannot be before the date of birth "
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
        problems.add("date_of_birth", f"{_label('date_of_birth')} cannot be in the future")
    if died is not None:
        if died > today:
            problems.add("date_of_death", f"{_label('date_of_death')} cannot be in the future")
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
                f"{_label('fracture_date')} must be on or after {uk_date(AUDIT_START_DATE)}",
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
                field, f"{_label(field)} cannot be in the future (today is {uk_date(today)})"
            )
        if died is not None:
            _check_death_order(problems, field, day, died)

    _check_dxa(episode, problems)
    _check_followups(episode, problems)
    return dict(problems)


def _check_dxa(episode: Mapping[str, Any], problems: _Problems) -> None:
    status = episode.get("dxa_status")
    reason_label = _label("dxa_not_recommended_reason")
    if status == "Not recommended" and _empty(episode.get("dxa_not_recommended_reason")):
        problems.add(
            "dxa_not_recommended_reason", f"{reason_label} is required when DXA is Not recommended"
        )
    if status != "Not recommended" and not _empty(episode.get("dxa_not_recommended_reason")):
        problems.add(
            "dxa_not_recommended_reason",
            f"{reason_label} must be empty unless DXA is Not recommended",
        )
    if episode.get("dxa_date") is not None and status != "Recommended":
        problems.add("dxa_date", f"{_label('dxa_date')} can only be given when DXA is Recommended")
    if episode.get("t_score") is not None and episode.get("dxa_date") is None:
        problems.add("t_score", f"{_label('t_score')} can only be given with the date of DXA")


def _check_followups(episode: Mapping[str, Any], problems: _Problems) -> None:
    for done_field, date_field in (
        ("followup16_done", "followup16_date"),
        ("followup52_done", "followup52_date"),
    ):
        done = episode.get(done_field) == "Yes"
        has_date = episode.get(date_field) is not None
        if done and not has_date:
            problems.add(
                date_field, f"{_label(date_field)} is required when the follow-up was done"
            )
        if has_date and not done:
            problems.add(
                date_field,
                f"{_label(date_field)} can only be given when "
                f"{_lower_first(_label(done_field))} is Yes",
            )
    first, second = episode.get("followup16_date"), episode.get("followup52_date")
    if first is not None and second is not None and second <= first:
        problems.on_changed(
            "followup52_date",
            f"{_label('followup52_date')} must be after the "
            f"{_lower_first(_label('followup16_date'))} ({uk_date(first)})",
            "followup16_date",
            f"{_label('followup16_date')} must be before the "
            f"{_lower_first(_label('followup52_date'))} ({uk_date(second)})",
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


# Export spelling ------------------------------------------------------------------------------


def format_value(field: str, value: Any) -> str:
    """The canonical export spelling of a stored value (dataset.md, "Export").

    Empty -> ""; dates YYYY-MM-DD; numbers in their shortest form (165, 165.5) except t_score,
    always one decimal (-2.0); fracture_sites and bone_therapy `;`-joined without spaces in
    dataset.md order; anything else as stored. Neutralising formula-like text is the CSV
    writer's job, not this function's.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return ""
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if field in NUMBER_FIELDS or isinstance(value, float | int | Decimal):
        number = float(value) + 0.0
        text = f"{number:.1f}"
        if field != "t_score" and text.endswith(".0"):
            text = text[:-2]
        return text
    if field in ("fracture_sites", "bone_therapy"):
        order = FRACTURE_SITES if field == "fracture_sites" else DRUGS
        parts = _split(value)
        # Stored values are already valid; anything unexpected is kept, after, rather than lost.
        known = [item for item in order if item in parts]
        return ";".join(known + [part for part in parts if part not in order])
    return str(value)
