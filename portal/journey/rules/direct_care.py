"""The patient's direct-care fields, one value at a time (spec/dataset.md, "Patient, for direct
care"): names, hospital number, telephone numbers, GP practice and its ODS code, language and
interpreter. Each parser takes cleaned text (trimmed, inner spaces collapsed) and gives the stored
value or raises ValueProblem with the plain-words message; `fold_name` is the form of a name the
search compares (case and accents set aside).
"""

from __future__ import annotations

import re
import unicodedata

from kpis.dataset import LABELS

NAME_LENGTH = 100
GP_PRACTICE_LENGTH = 200
LANGUAGE_LENGTH = 50

_HOSPITAL_NUMBER = re.compile(r"^[A-Z0-9]{1,20}$")
# An ODS code of a GP practice: one letter and five digits (B86001).
_GP_PRACTICE_CODE = re.compile(r"^[A-Z][0-9]{5}$")
# What a telephone number may hold besides its digits: spaces, dashes, brackets, a leading +.
_PHONE_DECORATION = re.compile(r"[\s\-()]")
# Letters Unicode does not decompose into a base letter and an accent.
_UNDECOMPOSED = str.maketrans(
    {"ø": "o", "ł": "l", "đ": "d", "ð": "d", "þ": "th", "æ": "ae", "œ": "oe", "ı": "i"}
)


class _Problem(ValueError):
    """Raised as rules.ValueProblem by the caller (values.py), which owns that class."""


def _label(field: str) -> str:
    return LABELS[field]


def _text(field: str, text: str, limit: int) -> str:
    if len(text) > limit:
        raise _Problem(f"{_label(field)} must be {limit} characters or fewer")
    return text


def parse_name(field: str, text: str) -> str:
    """A given or family name: at most 100 characters (already trimmed, spaces collapsed)."""
    return _text(field, text, NAME_LENGTH)


def parse_hospital_number(text: str) -> str:
    """1-20 letters and digits, kept in upper case."""
    number = text.upper()
    if not _HOSPITAL_NUMBER.match(number) or not number.isascii():
        raise _Problem(f"{_label('hospital_number')} must be 1 to 20 letters and digits")
    return number


def parse_phone(text: str) -> str:
    """One or two telephone numbers joined by `;`, each 10-15 digits once spaces, dashes,
    brackets and a leading + are set aside; stored as typed (trimmed)."""
    label = _label("phone")
    numbers = [part.strip() for part in text.split(";")]
    if len(numbers) > 2:
        raise _Problem(f"{label} can hold one or two numbers, separated by ;")
    for number in numbers:
        digits = _PHONE_DECORATION.sub("", number)
        digits = digits[1:] if digits.startswith("+") else digits
        if not digits:
            raise _Problem(f"{label} has an empty number: leave out the extra ;")
        if not (digits.isascii() and digits.isdigit()) or not 10 <= len(digits) <= 15:
            raise _Problem(f"{label} must be a number of 10 to 15 digits, like 01632 960123")
    return text


def parse_gp_practice_code(text: str) -> str:
    """The ODS code of a GP practice, in upper case."""
    code = text.upper().replace(" ", "")
    if not _GP_PRACTICE_CODE.match(code) or not code.isascii():
        raise _Problem(
            f"{_label('gp_practice_code')} must be one letter and five digits, like B86001"
        )
    return code


def parse_free_text(field: str, text: str) -> str:
    limit = GP_PRACTICE_LENGTH if field == "gp_practice" else LANGUAGE_LENGTH
    return _text(field, text, limit)


def fold_name(name: str | None) -> str | None:
    """A name as the search compares it: accents and case set aside (Zoë, ZOE -> zoe)."""
    if not name:
        return None
    decomposed = unicodedata.normalize("NFKD", name.casefold().translate(_UNDECOMPOSED))
    folded = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(folded.split()) or None
