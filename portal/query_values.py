"""Values read from a query string, each range-checked (security.md: whatever its query string, no
request gets a 5xx; a bad value gets a 400 or a plain-words page). A page reads its parameters
through these, so that a year of 0 or 10000, a page number of 10**30 or a date in year 1 is
refused in words before it reaches date arithmetic or the database."""

from __future__ import annotations

import re
from datetime import date

from kpis.periods import EARLIEST_YEAR, LATEST_YEAR

# The largest id a database integer column holds on both SQLite and PostgreSQL (32-bit signed).
LARGEST_ID = 2**31 - 1
# ASCII digits only: int() also reads Arabic-Indic and full-width digits.
_WHOLE_NUMBER = re.compile(r"[+-]?[0-9]{1,12}")
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


class QueryValueError(ValueError):
    """A query-string value that cannot be used; `str()` says why in plain words."""


def whole_number(text: str | None, *, low: int, high: int, what: str) -> int | None:
    """A whole number from `low` to `high`, or None when the value is empty."""
    if text is None or not text.strip():
        return None
    text = text.strip()
    if not _WHOLE_NUMBER.fullmatch(text) or not low <= int(text) <= high:
        raise QueryValueError(f"Enter {what} as a whole number from {low} to {high}")
    return int(text)


def year(text: str | None, what: str = "the year") -> int | None:
    """A year the portal can report on (kpis.periods: EARLIEST_YEAR to LATEST_YEAR), or None."""
    return whole_number(text, low=EARLIEST_YEAR, high=LATEST_YEAR, what=what)


def page_number(text: str | None) -> int:
    """A page of a list: 1 when empty or not a page number (the list shows its first page)."""
    try:
        return whole_number(text, low=1, high=LARGEST_ID, what="the page") or 1
    except QueryValueError:
        return 1


def day(text: str | None, what: str = "the date") -> date | None:
    """A date written YYYY-MM-DD in a year the portal can report on, or None when empty."""
    if text is None or not text.strip():
        return None
    text = text.strip()
    try:
        if not _DAY.fullmatch(text):
            raise ValueError
        parsed = date.fromisoformat(text)
    except ValueError:
        raise QueryValueError(f"Enter {what} like 2025-03-31 (YYYY-MM-DD)") from None
    if not EARLIEST_YEAR <= parsed.year <= LATEST_YEAR:
        raise QueryValueError(f"Enter {what} in a year from {EARLIEST_YEAR} to {LATEST_YEAR}")
    return parsed
