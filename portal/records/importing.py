"""Bulk import of fracture episodes from CSV (dataset.md, "CSV: import and export").

Two steps, so that nothing is half-written and nurses' saves are not held up:

1. `check_file` reads the whole file once, checks every row with the dataset rules
   (portal.journey.rules, the one validation layer the forms use too) against the stored
   records, and builds a plan: the rows to add and update, spooled to a temporary file so that
   memory does not grow with the file, and a report (counts, refusals, a preview of the changes).
   Nothing is written.
2. `apply_plan` writes the plan in one short transaction of bulk statements, after checking that
   no episode or patient it updates changed since step 1 (their `version`), with one audit event
   per patient and per episode holding its field changes and one for the import itself.

`import_file` does both, for the command line and for the page's background thread.
"""

from __future__ import annotations

import json
import pickle
import sqlite3
import tempfile
from array import array
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from itertools import islice
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    MetaData,
    Table,
    bindparam,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.types import NullType

from kpis.dataset import DATE_FIELDS, DIRECT_CARE_FIELDS, EPISODE_FIELDS, PATIENT_FIELDS
from portal import clock
from portal.audit.actor import Actor
from portal.audit.events import plain as _plain
from portal.extensions import db
from portal.journey.rules import (
    ValueProblem,
    check_patient_dates,
    check_record,
    format_value,
    parse_value,
    uk_date,
)
from portal.journey.versions import VERSION_KEY
from portal.models import Episode, ImportJob, Patient, Service
from portal.records import csv_files as csv_reading
from portal.records import nurses_day
from portal.records.csv_files import Columns, FileRefused

CHUNK_ROWS = 1000
# How many added/updated rows and refused cells a preview keeps (the counts are always whole).
PREVIEW_LIMIT = 200
REFUSALS_KEPT = 1000
# Parsed cell spellings remembered (bounded, so memory does not grow with the file).
PARSED_KEPT = 50_000
EPISODE_DATE_FIELDS = tuple(f for f in EPISODE_FIELDS if f in DATE_FIELDS)
# The patient's fields a row may change: the FLS-DB-based ones, then the direct-care ones
# (issue 18; an empty or missing cell leaves the stored value alone, as for every field).
PATIENT_VALUE_FIELDS = tuple(f for f in PATIENT_FIELDS if f != "nhs_number") + DIRECT_CARE_FIELDS
STORED_PATIENT_FIELDS = PATIENT_FIELDS + DIRECT_CARE_FIELDS

_episodes = Episode.__table__
_patients = Patient.__table__
# episodes as the import writes it: values arrive as the database's own text (dates
# YYYY-MM-DD), made while checking, so the write transaction does no conversion.
_episodes_prepared = Table(
    "episodes",
    MetaData(),
    *(Column(c.name, NullType, primary_key=c.primary_key) for c in _episodes.columns),
)


_DATE_PLACES = tuple(i for i, f in enumerate(EPISODE_FIELDS) if f in DATE_FIELDS)


def _stored_tuple(episode: dict) -> tuple:
    """An episode's fields in EPISODE_FIELDS order as both SQLite and PostgreSQL take them:
    dates as ISO text, everything else as it is."""
    values = [episode.get(f) for f in EPISODE_FIELDS]
    for place in _DATE_PLACES:
        if values[place] is not None:
            values[place] = values[place].isoformat()
    return tuple(values)


def _timestamp(moment: datetime) -> str:
    """A timestamp as SQLAlchemy stores it on SQLite; PostgreSQL reads the same text."""
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")


_services = Service.__table__


class StaleRecords(RuntimeError):
    """A record the plan updates changed after it was checked: nothing is written."""


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
    refusals: list[dict] = field(default_factory=list)
    # Accepted rows with something unusual (issue 18): {line, column, reason}.
    warnings: list[dict] = field(default_factory=list)
    warned: int = 0
    to_add: list[dict] = field(default_factory=list)
    to_update: list[dict] = field(default_factory=list)
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

    def as_dict(self) -> dict:
        return asdict(self)


class _PatientState:
    """A patient as the file leaves it so far: stored values merged with accepted rows."""

    __slots__ = (
        "id",
        "version",
        "service_id",
        "stored",
        "values",
        "line",
        "latest",
        "last_line",
        "last_unchanged",
        "nidx",
    )

    def __init__(self, service_id, stored_id, version, stored, values, line, latest):
        self.service_id = service_id
        self.id = stored_id
        self.version = version
        self.stored = stored  # the patient's stored values, None for a new patient
        self.values = values  # merged values, nhs_number included
        self.line = line  # the first accepted row of this patient in the file, if any
        self.latest = latest  # (date, field) of the latest date of the patient's episodes
        self.last_line = None  # the last accepted row of this patient
        self.last_unchanged = False  # whether that row left its episode unchanged
        self.nidx = None  # a new patient's place among the file's new patients


def _patient_key(service_id: int, nhs_number: str) -> int:
    return service_id * 10**10 + int(nhs_number)


class _Index:
    """The patients and episode keys a file has met, kept in a private temporary SQLite
    database (on disk once past a small cache) so that memory does not grow with the file."""

    def __init__(self) -> None:
        # "" opens a temporary database of its own, removed when closed.
        self.db = sqlite3.connect("", isolation_level=None)
        self.db.execute("PRAGMA journal_mode=OFF")
        self.db.execute("PRAGMA synchronous=OFF")
        self.db.execute(
            "CREATE TABLE p (key INTEGER PRIMARY KEY, nidx INTEGER, stored INTEGER, data BLOB)"
        )
        self.db.execute(
            "CREATE TABLE e (pkey INTEGER, day INTEGER, line INTEGER, PRIMARY KEY (pkey, day))"
            " WITHOUT ROWID"
        )

    @staticmethod
    def _marks(count: int) -> str:
        return ",".join("?" * count)

    def patients(self, keys: list[tuple[int, str]]) -> dict[tuple[int, str], _PatientState]:
        found = {}
        numbers = {_patient_key(*key): key for key in keys}
        for start in range(0, len(keys), 900):
            part = list(numbers)[start : start + 900]
            for number, data in self.db.execute(
                f"SELECT key, data FROM p WHERE key IN ({self._marks(len(part))})", part
            ):
                found[numbers[number]] = pickle.loads(data)
        return found

    def lines(self, keys: list[tuple[int, str]]) -> dict[tuple[int, str, date], int]:
        found = {}
        numbers = {_patient_key(*key): key for key in keys}
        for start in range(0, len(keys), 900):
            part = list(numbers)[start : start + 900]
            for number, day, line in self.db.execute(
                f"SELECT pkey, day, line FROM e WHERE pkey IN ({self._marks(len(part))})", part
            ):
                found[(*numbers[number], date.fromordinal(day))] = line
        return found

    def keep(self, states: dict, lines: list[tuple[int, str, date, int]]) -> None:
        self.db.execute("BEGIN")
        self.db.executemany(
            "INSERT OR REPLACE INTO p (key, nidx, stored, data) VALUES (?, ?, ?, ?)",
            [
                (
                    _patient_key(*key),
                    state.nidx,
                    state.stored is not None,
                    pickle.dumps(state, pickle.HIGHEST_PROTOCOL),
                )
                for key, state in states.items()
            ],
        )
        self.db.executemany(
            "INSERT OR REPLACE INTO e (pkey, day, line) VALUES (?, ?, ?)",
            [(_patient_key(s, n), day.toordinal(), line) for s, n, day, line in lines],
        )
        self.db.execute("COMMIT")

    def each(self, where: str = "1", order: str = "key") -> Iterator[_PatientState]:
        for (data,) in self.db.execute(f"SELECT data FROM p WHERE {where} ORDER BY {order}"):
            yield pickle.loads(data)

    def close(self) -> None:
        self.db.close()


@dataclass
class ImportPlan:
    """The checked writes of a file: patients in a temporary index, episode rows in a spool,
    both on disk."""

    report: ImportReport
    index: _Index
    new_patients: int
    spool: Any
    services_written: set[int]

    def episode_ops(self) -> Iterator[tuple]:
        self.spool.seek(0)
        while True:
            try:
                batch = pickle.load(self.spool)
            except EOFError:
                return
            yield from batch

    def close(self) -> None:
        self.spool.close()
        self.index.close()


# Checking ---------------------------------------------------------------------------------


class _Checker:
    def __init__(self, columns: Columns, service: Service | None, today: date, on_refusal):
        self.columns = columns
        self.service = service
        self.today = today
        self.on_refusal = on_refusal
        self.report = ImportReport(unknown_columns=list(columns.unknown))
        self.index = _Index()
        self.new_patients = 0
        # The patients and episode keys of the chunk being checked (the rest is in the index).
        self.patients: dict[tuple[int, str], _PatientState] = {}
        self.seen: dict[tuple[int, str, date], int] = {}
        self.new_lines: list[tuple[int, str, date, int]] = []
        self.services_written: set[int] = set()
        self.spool = tempfile.TemporaryFile()
        self.pending: list[tuple] = []
        self.parsed: dict[tuple[str, str], tuple[Any, str | None]] = {}
        self.services = {s.code: (s.id, s.active) for s in db.session.scalars(select(Service))}
        self.hospital_numbers = nurses_day.HospitalNumbers()
        self.position = {name: i for i, name in enumerate(columns.headers)}

    # -- one chunk of rows ---------------------------------------------------------------

    def check_chunk(self, rows: list[tuple[int, list[str]]]) -> None:
        parsed = [self._parse(line, cells) for line, cells in rows]
        keys = list(
            {
                (row["service_id"], row["values"]["nhs_number"])
                for row in parsed
                if row["service_id"] is not None and "nhs_number" in row["values"]
            }
        )
        self.patients = self.index.patients(keys)
        self.seen = self.index.lines(keys)
        self.hospital_numbers.load(parsed)
        episodes = self._load(parsed)
        for row in parsed:
            self._check(row, episodes)
        self.index.keep(self.patients, self.new_lines)
        self.patients, self.seen, self.new_lines = {}, {}, []
        if self.pending:
            pickle.dump(self.pending, self.spool, protocol=pickle.HIGHEST_PROTOCOL)
            self.pending = []

    def _parse(self, line: int, cells: list[str]) -> dict:
        columns = self.columns
        problems: list[tuple[str, str]] = []
        failed: set[str] = set()
        values: dict[str, Any] = {}
        parse = self._parse_value
        for name, index in columns.fields.items():
            if name == "service_code":
                continue
            raw = cells[index] if index < len(cells) else ""
            if not raw or raw.isspace():
                continue
            value, message = parse(name, raw)
            if message is not None:
                problems.append((columns.headers[index], message))
                failed.add(name)
            elif value is not None:
                values[name] = value
        if columns.site_columns:
            raw = ";".join(
                cells[i] for i in columns.site_columns if i < len(cells) and cells[i].strip()
            )
            value, message = parse("fracture_sites", raw)
            if message is not None:
                problems.append((columns.column_of("fracture_sites"), message))
                failed.add("fracture_sites")
            elif value is not None:
                values["fracture_sites"] = value
        if len(cells) > len(columns.headers) and any(
            c.strip() for c in cells[len(columns.headers) :]
        ):
            problems.append(
                (f"column {len(columns.headers) + 1}", "more cells than the header has columns")
            )
        service_id = self._service_of(cells, problems, failed)
        for name in ("nhs_number", "fracture_date"):
            if name not in values and name not in failed:
                problems.append((columns.column_of(name), f"{_label(name)} is required"))
                failed.add(name)
        return {
            "line": line,
            "service_id": service_id,
            "values": values,
            "problems": problems,
            "failed": failed,
        }

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

    def _service_of(self, cells, problems, failed) -> int | None:
        index = self.columns.fields.get("service_code")
        raw = cells[index] if index is not None and index < len(cells) else ""
        column = self.columns.column_of("service_code")
        code = None
        if raw.strip():
            try:
                code = parse_value("service_code", raw)
            except ValueProblem as problem:
                problems.append((column, str(problem)))
                failed.add("service_code")
                return None
        if self.service is not None:
            if code is not None and code != self.service.code:
                problems.append(
                    (column, f"names service {code}, but this import is for {self.service.code}")
                )
                failed.add("service_code")
                return None
            return self.service.id
        if code is None:
            problems.append((column, "Service code is required when no service is chosen"))
            failed.add("service_code")
            return None
        known = self.services.get(code)
        if known is None:
            problems.append((column, f"there is no service {code}"))
            failed.add("service_code")
            return None
        if not known[1]:
            problems.append((column, f"service {code} is inactive: its records cannot be changed"))
            failed.add("service_code")
            return None
        return known[0]

    def _load(self, parsed: list[dict]) -> dict[tuple[int, date], dict]:
        """Load the stored patients of this chunk not met before, and all their episodes."""
        wanted: dict[int, set[str]] = {}
        for row in parsed:
            nhs = row["values"].get("nhs_number")
            if row["service_id"] is not None and nhs is not None:
                if (row["service_id"], nhs) not in self.patients:
                    wanted.setdefault(row["service_id"], set()).add(nhs)
        loaded: set[int] = set()
        for service_id, numbers in wanted.items():
            for patient in db.session.execute(
                select(_patients).where(
                    _patients.c.service_id == service_id, _patients.c.nhs_number.in_(numbers)
                )
            ).mappings():
                stored = {f: patient[f] for f in STORED_PATIENT_FIELDS}
                loaded.add(patient["id"])
                self.patients[(service_id, patient["nhs_number"])] = _PatientState(
                    service_id, patient["id"], patient["version"], stored, dict(stored), None, None
                )
        by_id: dict[int, _PatientState] = {}
        for row in parsed:
            state = self._state(row)
            if state is not None and state.id is not None:
                by_id[state.id] = state
        episodes: dict[tuple[int, date], dict] = {}
        if not by_id:
            return episodes
        for episode in db.session.execute(
            select(_episodes).where(_episodes.c.patient_id.in_(by_id))
        ).mappings():
            episodes[(episode["patient_id"], episode["fracture_date"])] = dict(episode)
            state = by_id[episode["patient_id"]]
            if episode["patient_id"] in loaded and episode["deleted_at"] is None:
                # The latest date of the patient's stored episodes, for date of death checks.
                state.latest = _later(state.latest, _latest_date(episode))
        return episodes

    def _state(self, row: dict) -> _PatientState | None:
        nhs = row["values"].get("nhs_number")
        if row["service_id"] is None or nhs is None:
            return None
        return self.patients.get((row["service_id"], nhs))

    # -- one row -------------------------------------------------------------------------

    def _check(self, row: dict, episodes: dict[tuple[int, date], dict]) -> None:
        report = self.report
        report.rows += 1
        line, values, failed = row["line"], row["values"], row["failed"]
        problems: list[tuple[str, str]] = list(row["problems"])
        column_of = self.columns.column_of
        service_id = row["service_id"]
        nhs, fracture_date = values.get("nhs_number"), values.get("fracture_date")
        key = (service_id, nhs, fracture_date)
        known_key = service_id is not None and nhs is not None and fracture_date is not None
        if known_key:
            if key in self.seen:
                problems.append((column_of("fracture_date"), f"duplicate of line {self.seen[key]}"))
            else:
                self.seen[key] = line
                self.new_lines.append((*key, line))
        state = self.patients.get((service_id, nhs)) if known_key else None
        stored_episode = (
            episodes.get((state.id, fracture_date)) if state is not None and state.id else None
        )
        if stored_episode is not None and stored_episode["deleted_at"] is not None:
            problems.append((column_of("fracture_date"), "deleted; an admin can restore it"))
            known_key = False  # refused for its key: the rules of a merge do not apply
            stored_episode = None
        elif problems and known_key and key in self.seen and self.seen[key] != line:
            known_key = False
        patient_typed = {f: values[f] for f in PATIENT_VALUE_FIELDS if f in values}
        if state is not None:
            for name in ("date_of_birth", "sex"):
                mine, theirs = patient_typed.get(name), state.values.get(name)
                if mine is not None and theirs is not None and mine != theirs:
                    where = f"line {state.line}" if state.line is not None else "the stored patient"
                    problems.append(
                        (
                            column_of(name),
                            f"{_label(name)} differs from {where} ({_shown(name, theirs)}): "
                            "it may be another person",
                        )
                    )
                    failed.add(name)
        if known_key:
            problems += self.hospital_numbers.problems(
                line, service_id, nhs, patient_typed, column_of, state
            )
        patient = dict(state.values) if state is not None else {"nhs_number": nhs}
        patient.update(patient_typed)
        if stored_episode is not None:
            episode = {f: stored_episode[f] for f in EPISODE_FIELDS}
        else:
            episode = {"fracture_date": fracture_date}
        episode.update({f: v for f, v in values.items() if f in EPISODE_FIELDS})
        if known_key:
            rule_problems = check_record(patient, episode, self.today)
            died = patient.get("date_of_death")
            if (
                state is not None
                and died is not None
                and died != state.values.get("date_of_death")
                and state.latest is not None
            ):
                day, name = state.latest
                for name_, message in check_patient_dates(
                    patient, [{name: day}], self.today
                ).items():
                    rule_problems.setdefault(name_, message)
            for name, message in rule_problems.items():
                if name not in failed:
                    problems.append((column_of(name), message))
        if problems:
            self._refuse(line, problems)
            return
        self.hospital_numbers.claim(line, service_id, nhs, patient_typed)
        nurses_day.warn(self.report, line, column_of, stored_episode, episode, self.today)
        self._accept(row, state, stored_episode, patient, patient_typed, episode)

    def _refuse(self, line: int, problems: list[tuple[str, str]]) -> None:
        report = self.report
        report.refused += 1
        end = len(self.position)
        problems.sort(key=lambda p: self.position.get(p[0], end))
        for column, reason in problems:
            refusal = Refusal(line, column, reason)
            report.refused_cells += 1
            if len(report.refusals) < REFUSALS_KEPT:
                report.refusals.append(asdict(refusal))
            if self.on_refusal is not None:
                self.on_refusal(refusal)

    def _accept(self, row, state, stored_episode, patient, patient_typed, episode) -> None:
        report = self.report
        line, service_id = row["line"], row["service_id"]
        nhs = patient["nhs_number"]
        if state is not None:
            state.values = patient
            if state.line is None:
                state.line = line
        else:
            state = _PatientState(service_id, None, None, None, patient, line, None)
            state.nidx = self.new_patients
            self.new_patients += 1
            self.patients[(service_id, nhs)] = state
        state.last_line = line
        state.last_unchanged = False
        state.latest = _later(state.latest, _latest_date(episode))
        if stored_episode is None:
            full = _stored_tuple(episode)
            # The audit entry is prepared here, so that the write transaction stays short.
            created = json.dumps(
                {k: [None, v] for k, v in zip(EPISODE_FIELDS, full, strict=True) if v is not None}
            )
            # A new patient's id is known only when written: -(its place + 1) stands for it.
            patient_ref = state.id if state.id is not None else -(state.nidx + 1)
            self.pending.append(("add", service_id, patient_ref, full, created))
            report.added += 1
            self.services_written.add(service_id)
            if len(report.to_add) < PREVIEW_LIMIT:
                report.to_add.append(_preview(line, nhs, episode["fracture_date"]))
            return
        episode_changes = {
            f: (stored_episode[f], episode[f])
            for f in EPISODE_FIELDS
            # Equal values need no formatting; different ones may still be the same (1 and 1.0).
            if stored_episode[f] != episode[f]
            and format_value(f, stored_episode[f]) != format_value(f, episode[f])
        }
        if not episode_changes:
            # Whether the patient's own fields change is known only at the end of the file.
            report.unchanged += 1
            state.last_unchanged = True
            return
        self.pending.append(
            (
                "update",
                service_id,
                stored_episode["id"],
                stored_episode["version"],
                _stored_tuple(episode),
                json.dumps(audit_changes(episode_changes)),
            )
        )
        report.updated += 1
        self.services_written.add(service_id)
        if len(report.to_update) < PREVIEW_LIMIT:
            report.to_update.append(
                _preview(line, nhs, episode["fracture_date"], _shown_changes(episode_changes))
            )

    def finish(self) -> None:
        """Patients whose stored fields the file changes (postcode, care home, date of death):
        the change is the patient's last row's, which counts as an update."""
        report = self.report
        for state in self.index.each("stored = 1"):
            if state.last_line is None:
                continue
            changes = patient_changes(state)
            if not changes:
                continue
            self.services_written.add(state.service_id)
            if state.last_unchanged:
                report.unchanged -= 1
                report.updated += 1
            entry = next((u for u in report.to_update if u["line"] == state.last_line), None)
            if entry is not None:
                entry["changes"] = _shown_changes(changes) | entry["changes"]
            elif len(report.to_update) < PREVIEW_LIMIT:
                report.to_update.append(
                    _preview(
                        state.last_line, state.values["nhs_number"], None, _shown_changes(changes)
                    )
                )
        report.to_update.sort(key=lambda u: u["line"])


def patient_changes(state: _PatientState) -> dict[str, tuple[Any, Any]]:
    """{field: (stored, new)} of a stored patient's fields the file changes."""
    return {
        f: (state.stored.get(f), state.values.get(f))
        for f in PATIENT_VALUE_FIELDS
        if state.values.get(f) != state.stored.get(f)
        and format_value(f, state.values.get(f)) != format_value(f, state.stored.get(f))
    }


def _preview(line: int, nhs: str, fracture_date: date | None, changes=None) -> dict:
    """One row of the preview's lists (JSON-safe, kept in ImportJob.report)."""
    entry = {
        "line": line,
        "nhs_number": nhs,
        "fracture_date": fracture_date.isoformat() if fracture_date else "",
    }
    if changes is not None:
        entry["changes"] = changes
    return entry


def _shown_changes(changes: dict[str, tuple[Any, Any]]) -> dict[str, list[str]]:
    return {
        name: [format_value(name, old), format_value(name, new)]
        for name, (old, new) in changes.items()
    }


def _label(name: str) -> str:
    from kpis.dataset import LABELS

    return LABELS.get(name, name)


def _shown(name: str, value: Any) -> str:
    return uk_date(value) if isinstance(value, date) else format_value(name, value)


def _latest_date(episode: dict) -> tuple[date, str] | None:
    latest = None
    for name in EPISODE_DATE_FIELDS:
        day = episode.get(name)
        if day is not None and (latest is None or day > latest[0]):
            latest = (day, name)
    return latest


def _later(a, b):
    if a is None:
        return b
    if b is None:
        return a
    return b if b[0] > a[0] else a


def check_file(
    path: Path,
    *,
    service: Service | None,
    file_name: str | None = None,
    max_bytes: int | None = None,
    today: date | None = None,
    on_refusal: Callable[[Refusal], None] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ImportPlan:
    """Check every row of a CSV file against the dataset rules and the stored records.

    `service` is the service chosen for the import (None: every row names its own). Writes
    nothing. Raises FileRefused when the whole file is refused. `on_refusal` hears each refused
    cell in file order; `progress(rows_done, rows_total)` hears each chunk.
    """
    facts = csv_reading.inspect_file(path, max_bytes)
    today = today or clock.today()
    total = max(facts.lines - 1, 0)
    with csv_reading.open_text(path, facts.encoding) as stream:
        header = csv_reading.read_header(stream)
        columns = csv_reading.map_header(header)
        if service is None and "service_code" not in columns.fields:
            raise FileRefused("Choose the service to import into, or give a service_code column")
        if service is not None and not service.active:
            raise FileRefused(
                f"Service {service.code} is inactive: its records can be read but not changed"
            )
        checker = _Checker(columns, service, today, on_refusal)
        checker.report.file_name = file_name or path.name
        checker.report.sha256 = facts.sha256
        done = 0
        chunk: list[tuple[int, list[str]]] = []
        for row in csv_reading.read_rows(stream):
            chunk.append(row)
            if len(chunk) >= CHUNK_ROWS:
                checker.check_chunk(chunk)
                done = chunk[-1][0] - 1
                chunk = []
                if progress is not None:
                    progress(min(done, total), total)
        if chunk:
            checker.check_chunk(chunk)
        checker.finish()
        if progress is not None:
            progress(total, total)
    # The check reads only: end its transaction so the write starts on fresh data.
    db.session.rollback()
    return ImportPlan(
        report=checker.report,
        index=checker.index,
        new_patients=checker.new_patients,
        spool=checker.spool,
        services_written=checker.services_written,
    )


# Writing ----------------------------------------------------------------------------------


def _batches(items: Iterable, size: int = 1000) -> Iterator[list]:
    """Lists of up to `size` items, read lazily from any iterable."""
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


_AUDIT_COLUMNS = (
    "at",
    "user_id",
    "service_id",
    "action",
    "entity_type",
    "entity_id",
    "changes",
    "detail",
    "remote_addr",
    "operator",
)
_EPISODE_INSERT_COLUMNS = (
    "id",
    "service_id",
    "patient_id",
    "created_by_id",
    "created_at",
    "updated_at",
    "version",
    *EPISODE_FIELDS,
)


def _audit_row(
    stamp, actor: Actor, service_id, action, entity_type, entity_id, changes, detail=None
) -> tuple:
    """An audit_events row in _AUDIT_COLUMNS order; `changes` is JSON text (or None)."""
    return (
        stamp,
        actor.user_id,
        service_id,
        action,
        entity_type,
        entity_id,
        changes or None,
        detail or "CSV import",
        actor.address,
        actor.operator,
    )


def _insert_many(table: str, columns: tuple[str, ...], rows: list[tuple]) -> None:
    """One executemany straight to the database driver.

    The values are already the database's own text (ISO dates, timestamps, JSON), which SQLite
    stores as SQLAlchemy would and PostgreSQL casts from text, so no per-row conversion runs here.
    """
    connection = db.session.connection()
    mark = "?" if connection.dialect.paramstyle == "qmark" else "%s"
    connection.exec_driver_sql(
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join([mark] * len(columns))})",
        rows,
    )


def audit_changes(changes: dict[str, tuple[Any, Any]]) -> dict[str, list[Any]]:
    """{field: [old, new]} in the JSON-safe form of the audit trail."""
    return {k: [_json_safe(old), _json_safe(new)] for k, (old, new) in changes.items()}


def _json_safe(value: Any) -> Any:
    """audit._plain for the few types an import stores, quicker for a hundred thousand rows."""
    if value is None or type(value) in (str, float, int):
        return value
    return _plain(value)


def _check_versions(table, expected: dict[int, int]) -> None:
    """Lock the rows the plan updates and refuse if any changed since it was checked."""
    for ids in _batches(list(expected)):
        found = dict(
            db.session.execute(
                select(table.c.id, table.c.version).where(table.c.id.in_(ids)).with_for_update()
            ).all()
        )
        for row_id in ids:
            if found.get(row_id) != expected[row_id]:
                raise StaleRecords(
                    "Records changed while the file was being checked: nothing was written. "
                    "Import the file again"
                )


def apply_plan(
    plan: ImportPlan,
    actor: Actor,
    *,
    service_id: int | None = None,
    job: ImportJob | None = None,
) -> ImportJob:
    """Write a checked plan in the current transaction with bulk statements; the caller commits.

    Raises StaleRecords (the caller rolls back) when an episode or patient the plan updates was
    changed by someone else after the check.
    """
    report = plan.report
    user_id = actor.user_id
    now = clock.utcnow()
    stamp = _timestamp(now)
    session = db.session
    if plan.services_written:
        # Taking the write lock first (SQLite) means the version checks below read fresh rows.
        session.execute(
            update(_services)
            .where(_services.c.id.in_(plan.services_written))
            .values(data_version=_services.c.data_version + 1)
        )
    audit_rows: list[dict] = []

    def flush_audit(force: bool = False) -> None:
        if audit_rows and (force or len(audit_rows) >= 1000):
            _insert_many("audit_events", _AUDIT_COLUMNS, audit_rows)
            audit_rows.clear()

    # Patients: new ones inserted, changed ones updated, each audited.
    new_ids = _NewIds(_patients, plan.new_patients)

    def changed_patients() -> Iterator[list[_PatientState]]:
        return _batches(s for s in plan.index.each("stored = 1") if patient_changes(s))

    for batch in changed_patients():
        _check_versions(_patients, {s.id: s.version for s in batch})

    new_patients = _batches(plan.index.each("nidx IS NOT NULL", order="nidx"))
    for batch in new_patients:
        rows = [
            {
                "id": new_ids[s.nidx],
                "service_id": s.service_id,
                "created_at": now,
                "updated_at": now,
                "version": 1,
            }
            | {f: s.values.get(f) for f in STORED_PATIENT_FIELDS}
            | nurses_day.search_names(s.values)
            for s in batch
        ]
        session.execute(insert(_patients), rows)
        for state, values in zip(batch, rows, strict=True):
            audit_rows.append(
                _audit_row(
                    stamp,
                    actor,
                    state.service_id,
                    "create",
                    "patient",
                    values["id"],
                    json.dumps(
                        audit_changes(
                            {k: (None, v) for k, v in state.values.items() if v is not None}
                        )
                    ),
                )
            )
            flush_audit()
    statement = (
        update(_patients)
        .where(_patients.c.id == bindparam("_id"))
        .values(
            {f: bindparam(f) for f in PATIENT_VALUE_FIELDS + nurses_day.SEARCH_COLUMNS}
            | {"version": _patients.c.version + 1, "updated_at": now}
        )
    )
    for batch in changed_patients():
        session.execute(
            statement,
            [
                {"_id": s.id}
                | {f: s.values.get(f) for f in PATIENT_VALUE_FIELDS}
                | nurses_day.search_names(s.values)
                for s in batch
            ],
        )
        for state in batch:
            # `_version` lets a form opened before the import merge field by field (versions.py).
            changes = json.dumps(
                audit_changes(patient_changes(state))
                | {VERSION_KEY: [state.version, state.version + 1]}
            )
            audit_rows.append(
                _audit_row(
                    stamp,
                    actor,
                    state.service_id,
                    "update",
                    "patient",
                    state.id,
                    changes,
                )
            )
        flush_audit()

    # Episodes: bulk inserts and updates from the spool, in file order.
    added_ids: list[int] = []
    adds: list[tuple] = []
    updates: list[tuple] = []
    update_statement = (
        update(_episodes_prepared)
        .where(_episodes_prepared.c.id == bindparam("_id"))
        .values(
            {f: bindparam(f) for f in EPISODE_FIELDS if f != "fracture_date"}
            | {"version": _episodes_prepared.c.version + 1, "updated_at": stamp}
        )
    )

    def write_adds() -> None:
        ids = _allocate_ids(_episodes, len(adds))
        rows = [
            (
                new_id,
                service_id,
                patient_ref if patient_ref > 0 else new_ids[-patient_ref - 1],
                user_id,
                stamp,
                stamp,
                1,
                *values,
            )
            for (_, service_id, patient_ref, values, _changes), new_id in zip(
                adds, ids, strict=True
            )
        ]
        _insert_many("episodes", _EPISODE_INSERT_COLUMNS, rows)
        for (_, service_id, _nhs, _values, changes), new_id in zip(adds, ids, strict=True):
            added_ids.append(new_id)
            audit_rows.append(
                _audit_row(
                    stamp,
                    actor,
                    service_id,
                    "create",
                    "episode",
                    new_id,
                    changes,
                )
            )
            flush_audit()
        adds.clear()

    def write_updates() -> None:
        _check_versions(_episodes, {op[2]: op[3] for op in updates})
        session.execute(
            update_statement,
            [
                {"_id": episode_id} | dict(zip(EPISODE_FIELDS, values, strict=True))
                for _, _s, episode_id, _v, values, _c in updates
            ],
        )
        for _, service_id, episode_id, version, _values, changes in updates:
            changes = json.dumps(json.loads(changes) | {VERSION_KEY: [version, version + 1]})
            audit_rows.append(
                _audit_row(
                    stamp,
                    actor,
                    service_id,
                    "update",
                    "episode",
                    episode_id,
                    changes,
                )
            )
            flush_audit()
        updates.clear()

    for op in plan.episode_ops():
        if op[0] == "add":
            adds.append(op)
            if len(adds) >= 1000:
                write_adds()
        else:
            updates.append(op)
            if len(updates) >= 1000:
                write_updates()
    if adds:
        write_adds()
    if updates:
        write_updates()
    _link_refractures(added_ids)

    if job is None:
        job = ImportJob(
            service_id=service_id,
            user_id=user_id,
            file_name=report.file_name,
            file_sha256=report.sha256,
            created_at=now,
        )
        session.add(job)
    job.status = "applied"
    job.keep_valid = report.keep_valid
    job.total_rows = report.rows
    job.processed_rows = report.rows
    job.added, job.updated, job.unchanged, job.refused = (
        report.added,
        report.updated,
        report.unchanged,
        report.refused,
    )
    report.written = True
    job.report = report.as_dict()
    job.finished_at = now
    session.flush()
    audit_rows.append(
        _audit_row(
            stamp,
            actor,
            job.service_id,
            "import",
            "import_job",
            job.id,
            None,
            detail=(
                f"{report.file_name} (sha256 {report.sha256}): added {report.added}, "
                f"updated {report.updated}, unchanged {report.unchanged}, "
                f"refused {report.refused}"
            ),
        )
    )
    flush_audit(force=True)
    return job


def _allocate_ids(table, count: int) -> list[int]:
    """Ids for rows about to be inserted, so that one executemany needs no RETURNING.

    PostgreSQL takes them from the table's sequence. On SQLite this transaction already holds
    the database's write lock (apply_plan writes first), so nobody else can insert meanwhile.
    """
    if count == 0:
        return []
    session = db.session
    if session.get_bind().dialect.name == "postgresql":
        return list(
            session.execute(
                text(
                    "SELECT nextval(CAST(pg_get_serial_sequence(:table, 'id') AS regclass)) "
                    "FROM generate_series(1, :count)"
                ),
                {"table": table.name, "count": count},
            ).scalars()
        )
    start = session.execute(select(func.coalesce(func.max(table.c.id), 0))).scalar_one()
    return list(range(start + 1, start + 1 + count))


class _NewIds:
    """The ids of the file's new patients, by their place among them."""

    def __init__(self, table, count: int) -> None:
        self.start = 0
        self.ids: array | None = None
        if count and db.session.get_bind().dialect.name == "postgresql":
            self.ids = array("q", _allocate_ids(table, count))
        elif count:
            self.start = _allocate_ids(table, 1)[0]  # the rest follow it: the lock is held

    def __getitem__(self, place: int) -> int:
        return self.ids[place] if self.ids is not None else self.start + place


def _link_refractures(added_ids: list[int]) -> None:
    """A new episode of a known patient links to that patient's latest earlier episode."""
    earlier = _episodes.alias("earlier")
    latest_earlier = (
        select(earlier.c.id)
        .where(
            earlier.c.patient_id == _episodes.c.patient_id,
            earlier.c.fracture_date < _episodes.c.fracture_date,
            earlier.c.deleted_at.is_(None),
        )
        .order_by(earlier.c.fracture_date.desc())
        .limit(1)
        .scalar_subquery()
    )
    for ids in _batches(added_ids):
        db.session.execute(
            update(_episodes)
            .where(_episodes.c.id.in_(ids))
            .values(previous_episode_id=latest_earlier)
        )


def import_file(
    path: Path,
    actor: Actor,
    *,
    service: Service | None,
    file_name: str | None = None,
    keep_valid: bool = False,
    dry_run: bool = False,
    max_bytes: int | None = None,
    job: ImportJob | None = None,
    on_refusal: Callable[[Refusal], None] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ImportReport:
    """Check a file, then write it unless refused (all-or-nothing) or a dry run.

    The caller commits when `report.written` is true; with anything refused and keep_valid
    false, or a dry run, nothing is written. Raises FileRefused or StaleRecords.
    """
    plan = check_file(
        path,
        service=service,
        file_name=file_name,
        max_bytes=max_bytes,
        on_refusal=on_refusal,
        progress=progress,
    )
    try:
        report = plan.report
        report.keep_valid, report.dry_run = keep_valid, dry_run
        if dry_run or (report.refused and not keep_valid):
            return report
        try:
            apply_plan(
                plan,
                actor,
                service_id=service.id if service is not None else None,
                job=job,
            )
        except IntegrityError as error:
            # Someone added one of these patients or episodes after the check.
            raise StaleRecords(
                "Records were added while the file was being checked: nothing was written. "
                "Import the file again"
            ) from error
        return report
    finally:
        plan.close()
