"""Runs of whole calendar months, and the as-of date's due cut-offs."""

from __future__ import annotations

import re
from calendar import monthrange
from dataclasses import dataclass
from datetime import date, timedelta

from kpis.dataset import DUE_AT_16_WEEKS_DAYS, DUE_AT_52_WEEKS_DAYS, DUE_AT_90_DAYS

_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
# The years a period may fall in: wide enough for any FLS record, narrow enough that date
# arithmetic around a period (a month before, a year after) never leaves what `date` can hold.
EARLIEST_YEAR, LATEST_YEAR = 1900, 2999


def check_year(year: int, label: str | None = None) -> int:
    """`year` when the portal can report on it, else PeriodError with the range in words."""
    if not EARLIEST_YEAR <= year <= LATEST_YEAR:
        raise PeriodError(
            f"{label or f'year {year}'}: enter a year from {EARLIEST_YEAR} to {LATEST_YEAR}"
        )
    return year


class PeriodError(ValueError):
    """A month or period that cannot be used, with the reason in words."""


@dataclass(frozen=True, order=True)
class Month:
    year: int
    month: int

    @classmethod
    def parse(cls, text: str, label: str = "month") -> Month:
        """`YYYY-MM` with a month 01-12; anything else is refused with a reason."""
        match = _MONTH.match(text.strip()) if text else None
        if not match:
            raise PeriodError(f"{label} {text!r} is not a month like 2024-03 (YYYY-MM)")
        year, month = int(match.group(1)), int(match.group(2))
        if not 1 <= month <= 12:
            raise PeriodError(f"{label} {text!r}: month must be 01 to 12")
        check_year(year, f"{label} {text!r}")
        return cls(year, month)

    @classmethod
    def of(cls, day: date) -> Month:
        return cls(day.year, day.month)

    @property
    def first_day(self) -> date:
        return date(self.year, self.month, 1)

    @property
    def last_day(self) -> date:
        return date(self.year, self.month, monthrange(self.year, self.month)[1])

    @property
    def key(self) -> str:
        """`YYYY-MM`, the form the database groups months by."""
        return f"{self.year:04d}-{self.month:02d}"

    @property
    def index(self) -> int:
        return self.year * 12 + self.month - 1

    @classmethod
    def from_index(cls, index: int) -> Month:
        return cls(index // 12, index % 12 + 1)

    def plus(self, months: int) -> Month:
        return Month.from_index(self.index + months)

    def label(self) -> str:
        return self.first_day.strftime("%b %Y")

    def __str__(self) -> str:
        return self.key


@dataclass(frozen=True)
class Period:
    """The cohort window: first day of `first` to last day of `last`, inclusive."""

    first: Month
    last: Month

    def __post_init__(self) -> None:
        if self.first > self.last:
            raise PeriodError(f"--from {self.first} is after --to {self.last}")

    @classmethod
    def parse(cls, start: str, end: str) -> Period:
        return cls(Month.parse(start, "--from"), Month.parse(end, "--to"))

    @classmethod
    def year(cls, year: int) -> Period:
        check_year(year)
        return cls(Month(year, 1), Month(year, 12))

    @classmethod
    def quarter(cls, year: int, quarter: int) -> Period:
        if not 1 <= quarter <= 4:
            raise PeriodError("quarter must be 1 to 4")
        check_year(year)
        first = Month(year, 3 * quarter - 2)
        return cls(first, first.plus(2))

    @property
    def start(self) -> date:
        return self.first.first_day

    @property
    def end(self) -> date:
        return self.last.last_day

    @property
    def months(self) -> int:
        return self.last.index - self.first.index + 1

    def each_month(self) -> list[Month]:
        return [self.first.plus(i) for i in range(self.months)]

    def previous(self) -> Period:
        """The run of the same number of months just before this one."""
        return Period(self.first.plus(-self.months), self.first.plus(-1))

    def label(self) -> str:
        if self.months == 12 and self.first.month == 1:
            return str(self.first.year)
        if self.months == 1:
            return self.first.label()
        if self.months == 3 and self.first.month in (1, 4, 7, 10):
            return f"Q{(self.first.month + 2) // 3} {self.first.year}"
        return f"{self.first.label()} to {self.last.label()}"

    def __str__(self) -> str:
        return f"{self.first}..{self.last}"


@dataclass(frozen=True)
class DueCutoffs:
    """An episode is due at 90 days / 16 weeks / 52 weeks when its fracture_date is on or before
    the matching cut-off (`fracture_date + N days <= as_of` is `fracture_date <= as_of - N`)."""

    as_of: date

    @property
    def due90(self) -> date:
        return self.as_of - timedelta(days=DUE_AT_90_DAYS)

    @property
    def due16(self) -> date:
        return self.as_of - timedelta(days=DUE_AT_16_WEEKS_DAYS)

    @property
    def due52(self) -> date:
        return self.as_of - timedelta(days=DUE_AT_52_WEEKS_DAYS)
