"""The one CSV writer of the portal: every CSV it emits (patient exports, the KPI export, run-chart
data, the public benchmarks) is written here, so that no cell can run as a spreadsheet formula.

OWASP's advice on CSV injection: a text cell starting with `=`, `+`, `-`, `@`, a tab or a carriage
return gets a leading apostrophe, which spreadsheets show as text. Numbers stay numbers: a T-score
of -1.7 is written -1.7 (dataset.md, "Export"; security.md). Lives in kpis/ (free of Flask) because
the KPI export and run charts write CSV too; the portal imports it from here.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable
from decimal import Decimal
from fractions import Fraction
from typing import Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# A plain number as the portal writes one: -1.7, 165, +3, 0.25 (never 1e3 or a formula).
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")


def safe_cell(value: Any) -> Any:
    """The value as a cell no spreadsheet will run: numbers as they are, text neutralised."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int | float | Decimal | Fraction):
        return value
    text = str(value)
    if text.startswith(FORMULA_STARTS) and not _NUMBER.fullmatch(text):
        return "'" + text
    return text


class SafeWriter:
    """csv.writer's writerow and writerows, every cell through `safe_cell`; LF line ends."""

    def __init__(self, buffer: io.StringIO | Any):
        self._writer = csv.writer(buffer, lineterminator="\n")

    def writerow(self, row: Iterable[Any]) -> None:
        self._writer.writerow([safe_cell(cell) for cell in row])

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for row in rows:
            self.writerow(row)


def csv_text(header: Iterable[Any], rows: Iterable[Iterable[Any]]) -> str:
    """A whole CSV as text: the header, then the rows."""
    buffer = io.StringIO()
    writer = SafeWriter(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()
