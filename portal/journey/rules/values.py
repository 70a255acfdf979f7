"""One value at a time: the text a user typed (a form field) or a CSV cell as its stored value,
and a stored value spelt back for export (spec/dataset.md, "Values" and "Export").

`parse_value(field, raw)` gives the stored Python value (`date`, `float`, canonical enumeration
spelling, `;`-joined multi-value in dataset.md order) or `None` when empty, with every leniency
of dataset.md. A refused value raises `ValueProblem`, whose `str()` is the plain-words message to
show beside the field (forms) or after `line N: <column>:` (importer). `parse_values(raw)` does
this for a whole form or row and collects the problems per field. `format_value` is the way
back, the one spelling of the export.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from nhs_number import calculate_checksum

from kpis.dataset import (
    CHOICES,
    DATE_FIELDS,
    DIRECT_CARE_FIELDS,
    DRUG_SYNONYMS,
    DRUGS,
    EPISODE_FIELDS,
    FRACTURE_SITE_SYNONYMS,
    FRACTURE_SITES,
    LABELS,
    MAX_FRACTURE_SITES,
    MULTI_VALUE_FIELDS,
    NOT_KNOWN_SYNONYMS,
    NUMBER_FIELDS,
    PATIENT_FIELDS,
    THERAPY_OUTCOMES,
    YES_NO_SHORTHANDS,
    YES_NO_UNKNOWN,
)

NOT_KNOWN = "Not known"


class ValueProblem(ValueError):
    """A single value refused; `str()` is the plain-words message naming the field and the rule."""


def uk_date(day: date) -> str:
    """A date as UK users read it in messages: 12/03/2024."""
    return day.strftime("%d/%m/%Y")


def field_label(field: str) -> str:
    """A field's name as users read it ("NHS number", "Date of DXA")."""
    return LABELS.get(field, field.replace("_", " ").capitalize())


def is_empty(value: Any) -> bool:
    """No answer: None or blank text ("Not known" is an answer)."""
    return value is None or (isinstance(value, str) and not value.strip())


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


def nhs_check_digit(first_nine: str) -> int | None:
    """The modulus-11 check digit of the first nine digits; None when no number can have one."""
    # nhs-number's calculate_checksum is the bare modulus 11, 10 meaning "no such number". Its
    # is_valid is not used: it refuses a number in the Scottish CHI range whose first six digits
    # are not a date, and spaces other than 3-3-4, where dataset.md asks only for the check digit.
    check = calculate_checksum(first_nine)
    return None if check is None or check == 10 else check


def clean_nhs_number(raw: str) -> str:
    """The 10 digits of an NHS (or H&C) number typed with or without spaces and dashes.

    Raises ValueProblem for a wrong length, anything but digits, a failed modulus-11 check digit,
    or a number of one repeated digit (0000000000 passes the check digit but is no one's number).
    """
    label = field_label("nhs_number")
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
    if nhs_check_digit(digits[:9]) != int(digits[9]):
        raise ValueProblem(
            f"{label} is not valid: its check digit does not match (check for a typing error)"
        )
    return digits


def spaced_nhs_number(value: str | None) -> str:
    """An NHS number as people read and say it, 999 590 8301 (stored and exported as 10 digits)."""
    if not value:
        return ""
    text = str(value)
    if len(text) != 10 or not text.isdigit():
        return text
    return f"{text[:3]} {text[3:6]} {text[6:]}"


# Postcode -------------------------------------------------------------------------------------

# Outward code (A9, A99, AA9, AA99, A9A, AA9A) then inward code (9AA); GIR 0AA is Girobank's.
_POSTCODE = re.compile(r"^([A-Z]{1,2}[0-9][A-Z0-9]?|GIR)([0-9][A-Z]{2})$")


def normalise_postcode(raw: str) -> str:
    """A UK postcode in upper case with one space before the inward code (sw1a2aa -> SW1A 2AA).

    Raises ValueProblem when the text is not shaped like a UK postcode.
    """
    text = _clean(raw)
    if text is None:
        raise ValueProblem(f"{field_label('postcode')} is empty")
    compact = text.replace(" ", "").upper()
    match = _POSTCODE.match(compact)
    if match is None or (match.group(1) == "GIR" and match.group(2) != "0AA"):
        raise ValueProblem(f"{field_label('postcode')} must be a UK postcode, like SW1A 2AA")
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
            raise ValueProblem(f"{field_label(field)} must have a four-digit year, like 12/03/2024")
    else:
        raise ValueProblem(f"{field_label(field)} must be a date like 12/03/2024 or 2024-03-12")
    if time_part is not None and not _MIDNIGHT.match(time_part):
        raise ValueProblem(f"{field_label(field)} must be a date without a time of day")
    try:
        return date(int(year), int(month), int(day))
    except ValueError:
        raise ValueProblem(
            f"{field_label(field)} must be a real date ({text.split(' ')[0]} does not exist)"
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
            raise ValueProblem(f"{field_label(field)} must use a decimal point, not a comma")
        if _WITH_UNIT.match(text):
            raise ValueProblem(f"{field_label(field)} must be a number without a unit")
        raise ValueProblem(f"{field_label(field)} must be a number")
    sign, digits = match.groups()
    number = Decimal(digits)
    # Trailing zeros carry no precision claim (-1.70 is -1.7); anything finer is refused, never rounded.
    fraction = digits.partition(".")[2].rstrip("0")
    if len(fraction) > decimals == 0:
        raise ValueProblem(f"{field_label(field)} must be a whole number")
    if len(fraction) > decimals:
        places = "one decimal place" if decimals == 1 else f"{decimals} decimal places"
        raise ValueProblem(f"{field_label(field)} can have at most {places}")
    if sign in ("-", "\u2212"):
        number = -number
    if not low <= number <= high:
        raise ValueProblem(
            f"{field_label(field)} must be between {_format_bound(field, low)} and {_format_bound(field, high)}"
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
        raise ValueProblem(f"{field_label(field)} must be one of: {', '.join(allowed)}")
    return value


def _parts(text: str) -> list[str]:
    """The non-empty parts of a `;`-joined cell (a trailing `;` is not a value)."""
    return [part for part in (_clean(piece) for piece in text.split(";")) if part]


def _parse_fracture_sites(text: str) -> str:
    label = field_label("fracture_sites")
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
    label = field_label("bone_therapy")
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
        raise ValueProblem(f"{field_label('service_code')} must be 3 letters or digits (never ALL)")
    return code


PARSEABLE_FIELDS = ("service_code",) + PATIENT_FIELDS + EPISODE_FIELDS + DIRECT_CARE_FIELDS


def _parse_direct_care(field: str, text: str) -> str:
    """The patient's direct-care fields (rules/direct_care.py). A cell the portal's own export
    neutralised (a leading apostrophe before = + - @) reads back as it was exported."""
    from portal.journey.rules import direct_care

    if text[:1] == "'" and text[1:2] in ("=", "+", "-", "@"):
        text = text[1:]
    try:
        if field in ("given_name", "family_name"):
            return direct_care.parse_name(field, text)
        if field == "hospital_number":
            return direct_care.parse_hospital_number(text)
        if field == "phone":
            return direct_care.parse_phone(text)
        if field == "gp_practice_code":
            return direct_care.parse_gp_practice_code(text)
        if field in ("gp_practice", "preferred_language"):
            return direct_care.parse_free_text(field, text)
    except direct_care._Problem as problem:
        raise ValueProblem(str(problem)) from None
    return _one_of(field, text)


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
    if isinstance(raw, list | tuple):
        # Ticked checkboxes, as request.form.getlist gives them; other fields take one value.
        raw = ";".join(raw) if field in MULTI_VALUE_FIELDS else str(raw)
    text = _clean(raw)
    if text is None:
        return None
    if field == "phone":  # stored as typed, only trimmed (dataset.md)
        return _parse_direct_care(field, str(raw).translate(_INVISIBLE).strip())
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
    if CHOICES.get(field) is FRACTURE_SITES:  # a new fracture's site (7.08...) in FLS-DB's words
        text = FRACTURE_SITE_SYNONYMS.get(_fold(text), text)
    if field in DIRECT_CARE_FIELDS:
        return _parse_direct_care(field, text)
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


def split_values(value: Any) -> list[str]:
    """The parts of a stored multi-value (`;`-joined text, or already a list), blanks dropped."""
    if value is None:
        return []
    if isinstance(value, str):
        return [part.strip() for part in value.split(";") if part.strip()]
    return [str(part) for part in value]


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
        parts = split_values(value)
        # Stored values are already valid; anything unexpected is kept, after, rather than lost.
        known = [item for item in order if item in parts]
        return ";".join(known + [part for part in parts if part not in order])
    return str(value)
