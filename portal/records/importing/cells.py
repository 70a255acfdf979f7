"""One row of a file read into typed values with the dataset's parser (portal.journey.rules), and
the service it is for (dataset.md, "CSV: import and export", "Columns" and "Values")."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from kpis.dataset import LABELS
from portal.extensions import db
from portal.journey.rules import ValueProblem, parse_value
from portal.models import Service
from portal.records.csv_files import Columns
from portal.records.importing.report import Problem

# Parsed cell spellings remembered (bounded, so memory does not grow with the file).
PARSED_KEPT = 50_000


def label(name: str) -> str:
    """A field as the dataset names it, for messages."""
    return LABELS.get(name, name)


@dataclass(slots=True)
class ReadRow:
    """A row's typed values, the cells refused while reading it, and its service."""

    line: int
    service_id: int | None
    values: dict[str, Any]
    problems: list[Problem] = field(default_factory=list)
    # Fields whose cell was refused: the rules between fields say nothing more about them.
    failed: set[str] = field(default_factory=set)

    def refuse(self, column: str, name: str, reason: str) -> None:
        self.problems.append((column, reason))
        self.failed.add(name)


class RowReader:
    """Reads rows of one file: `service` is the service chosen for the import, or None when every
    row names its own."""

    def __init__(self, columns: Columns, service: Service | None) -> None:
        self.columns = columns
        self.service = service
        self.services = {s.code: (s.id, s.active) for s in db.session.scalars(select(Service))}
        self.parsed: dict[tuple[str, str], tuple[Any, str | None]] = {}

    def read(self, line: int, cells: list[str]) -> ReadRow:
        columns = self.columns
        row = ReadRow(line, None, {})
        for name, index in columns.fields.items():
            if name == "service_code":
                continue
            raw = cells[index] if index < len(cells) else ""
            if not raw or raw.isspace():
                continue
            self._take(row, name, columns.headers[index], raw)
        if columns.site_columns:
            raw = ";".join(
                cells[i] for i in columns.site_columns if i < len(cells) and cells[i].strip()
            )
            self._take(row, "fracture_sites", columns.column_of("fracture_sites"), raw)
        width = len(columns.headers)
        if len(cells) > width and any(c.strip() for c in cells[width:]):
            row.problems.append((f"column {width + 1}", "more cells than the header has columns"))
        row.service_id = self._service_of(row, cells)
        for name in ("nhs_number", "fracture_date"):
            if name not in row.values and name not in row.failed:
                row.refuse(columns.column_of(name), name, f"{label(name)} is required")
        return row

    def _take(self, row: ReadRow, name: str, column: str, raw: str) -> None:
        value, message = self._parse_value(name, raw)
        if message is not None:
            row.refuse(column, name, message)
        elif value is not None:
            row.values[name] = value

    def _parse_value(self, name: str, raw: str) -> tuple[Any, str | None]:
        """parse_value, remembered: the same few spellings fill most cells of a file."""
        key = (name, raw)
        known = self.parsed.get(key)
        if known is not None:
            return known
        try:
            known = (parse_value(name, raw), None)
        except ValueProblem as problem:
            known = (None, str(problem))
        if name != "nhs_number":  # unique per patient: not worth keeping
            if len(self.parsed) >= PARSED_KEPT:
                self.parsed.clear()
            self.parsed[key] = known
        return known

    def _service_of(self, row: ReadRow, cells: list[str]) -> int | None:
        """The id of the row's service; None, with the cell refused, when it has none."""
        index = self.columns.fields.get("service_code")
        raw = cells[index] if index is not None and index < len(cells) else ""
        column = self.columns.column_of("service_code")
        code = None
        if raw.strip():
            try:
                code = parse_value("service_code", raw)
            except ValueProblem as problem:
                row.refuse(column, "service_code", str(problem))
                return None
        if self.service is not None:
            if code is not None and code != self.service.code:
                row.refuse(
                    column,
                    "service_code",
                    f"names service {code}, but this import is for {self.service.code}",
                )
                return None
            return self.service.id
        if code is None:
            row.refuse(column, "service_code", "Service code is required when no service is chosen")
            return None
        known = self.services.get(code)
        if known is None:
            row.refuse(column, "service_code", f"there is no service {code}")
            return None
        service_id, active = known
        if not active:
            row.refuse(
                column, "service_code", f"service {code} is inactive: its records cannot be changed"
            )
            return None
        return service_id
