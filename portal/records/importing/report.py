"""What checking (and applying) a file found: counts, refused cells and a preview of the changes
(dataset.md, "CSV: import and export", "Refusals"). JSON-safe, kept in ImportJob.report."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import date
from typing import Any

from portal.audit.events import plain
from portal.journey.rules import format_value

# How many added/updated rows and refused cells a preview keeps (the counts are always whole).
PREVIEW_LIMIT = 200
REFUSALS_KEPT = 1000

# A refused cell before it has its line: (the column as in the file, the reason).
Problem = tuple[str, str]
# {field: (old, new)} of typed values.
Changes = dict[str, tuple[Any, Any]]


@dataclass
class Refusal:
    line: int
    column: str
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.column}: {self.reason}"


@dataclass
class ImportReport:
    """What checking (and applying) a file found; JSON-safe through `as_dict` for ImportJob."""

    file_name: str = ""
    sha256: str = ""
    unknown_columns: list[str] = field(default_factory=list)
    rows: int = 0
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    refused: int = 0
    refused_cells: int = 0
    refusals: list[dict[str, Any]] = field(default_factory=list)
    # Accepted rows with something unusual (issue 18; records/direct_care.py): line, column, reason.
    warnings: list[dict[str, Any]] = field(default_factory=list)
    warned: int = 0
    to_add: list[dict[str, Any]] = field(default_factory=list)
    to_update: list[dict[str, Any]] = field(default_factory=list)
    file_refused: str | None = None
    written: bool = False
    keep_valid: bool = False
    dry_run: bool = False

    def summary(self) -> str:
        """The CLI summary line (cli.md): A and U count what was written."""
        if self.written:
            return (
                f"added {self.added}, updated {self.updated}, unchanged {self.unchanged}, "
                f"refused {self.refused}"
            )
        return (
            f"added 0, updated 0, unchanged {self.unchanged}, refused {self.refused}, "
            "nothing written"
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def refuse(
        self,
        line: int,
        problems: list[Problem],
        on_refusal: Callable[[Refusal], None] | None = None,
    ) -> None:
        """Count a refused row and each of its refused cells, in the order given."""
        self.refused += 1
        for column, reason in problems:
            refusal = Refusal(line, column, reason)
            self.refused_cells += 1
            if len(self.refusals) < REFUSALS_KEPT:
                self.refusals.append(asdict(refusal))
            if on_refusal is not None:
                on_refusal(refusal)

    def count_addition(self, line: int, nhs_number: str, fracture_date: date) -> None:
        self.added += 1
        if len(self.to_add) < PREVIEW_LIMIT:
            self.to_add.append(_preview(line, nhs_number, fracture_date))

    def count_update(
        self, line: int, nhs_number: str, fracture_date: date, changes: Changes
    ) -> None:
        self.updated += 1
        if len(self.to_update) < PREVIEW_LIMIT:
            self.to_update.append(_preview(line, nhs_number, fracture_date, changes))

    def count_patient_update(
        self, line: int, nhs_number: str, changes: Changes, *, row_was_unchanged: bool
    ) -> None:
        """A stored patient's fields that the file changes, shown on the patient's last row,
        which counts as an update (known only at the end of the file)."""
        if row_was_unchanged:
            self.unchanged -= 1
            self.updated += 1
        entry = next((u for u in self.to_update if u["line"] == line), None)
        if entry is not None:
            entry["changes"] = shown_changes(changes) | entry["changes"]
        elif len(self.to_update) < PREVIEW_LIMIT:
            self.to_update.append(_preview(line, nhs_number, None, changes))

    def sort_preview(self) -> None:
        self.to_update.sort(key=lambda u: u["line"])


def _preview(
    line: int, nhs_number: str, fracture_date: date | None, changes: Changes | None = None
) -> dict[str, Any]:
    """One row of the preview's lists (JSON-safe, kept in ImportJob.report)."""
    entry: dict[str, Any] = {
        "line": line,
        "nhs_number": nhs_number,
        "fracture_date": fracture_date.isoformat() if fracture_date else "",
    }
    if changes is not None:
        entry["changes"] = shown_changes(changes)
    return entry


def shown_changes(changes: Changes) -> dict[str, list[str]]:
    """{field: [old, new]} as the preview shows them."""
    return {
        name: [format_value(name, old), format_value(name, new)]
        for name, (old, new) in changes.items()
    }


def audit_changes(changes: Changes) -> dict[str, list[Any]]:
    """{field: [old, new]} as the audit trail keeps them (JSON-safe)."""
    return {name: [_json_safe(old), _json_safe(new)] for name, (old, new) in changes.items()}


def created_changes(values: Iterable[tuple[str, Any]]) -> dict[str, tuple[None, Any]]:
    """{field: [None, value]} for each (field, value) of a new record, as the audit trail keeps
    them. Written for speed, inside the write transaction: an import makes one for every new
    patient and episode. Tuples (JSON arrays all the same) because the garbage collector stops
    tracking a tuple of plain values, and so does not keep rescanning hundreds of thousands."""
    return {
        name: (None, value if type(value) in _AS_THEY_ARE else plain(value))
        for name, value in values
        if value is not None
    }


_AS_THEY_ARE = (str, float, int)


def _json_safe(value: Any) -> Any:
    """events.plain for the few types an import stores, quicker for a hundred thousand rows."""
    if value is None or type(value) in _AS_THEY_ARE:
        return value
    return plain(value)
