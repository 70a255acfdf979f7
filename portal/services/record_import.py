"""Bulk import of fracture episodes from CSV (dataset.md, "CSV: import and export").

Two steps, so that nothing is half-written and nurses' saves are not held up:

1. `check_file` reads the whole file once, checks every row with the dataset rules
   (portal.services.dataset_rules, the one validation layer the forms use too) against the stored
   records, and builds a plan: the rows to add and update, spooled to a temporary file so that
   memory does not grow with the file, and a report (counts, refusals, a preview of the changes).
   Nothing is written.
2. `apply_plan` writes the plan in one short transaction of bulk statements, after checking that
   no episode or patient it updates changed since step 1 (their `version`), with one audit event
   per patient and per episode holding its field changes and one for the import itself.

`import_file` does both, for the command line and for the page's background thread.
"""

from __future__ import annotations

import pickle
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import bindparam, func, insert, select, update

from kpis.dataset import DATE_FIELDS, EPISODE_FIELDS, PATIENT_FIELDS
from portal.extensions import db
from portal.models import AuditEvent, Episode, ImportJob, Patient, Service
from portal.services import csv_reading
from portal.services.audit import _plain
from portal.services.csv_reading import Columns, FileRefused
from portal.services.dataset_rules import (
    ValueProblem,
    check_patient_dates,
    check_record,
    format_value,
    parse_value,
    today_in_london,
    uk_date,
)

CHUNK_ROWS = 1000
# How many added/updated rows and refused cells a preview keeps (the counts are always whole).
PREVIEW_LIMIT = 200
REFUSALS_KEPT = 1000
EPISODE_DATE_FIELDS = tuple(f for f in EPISODE_FIELDS if f in DATE_FIELDS)
PATIENT_VALUE_FIELDS = tuple(f for f in PATIENT_FIELDS if f != "nhs_number")

_episodes = Episode.__table__
_patients = Patient.__table__
_services = Service.__table__
_audit = AuditEvent.__table__


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

    @classmethod
    def from_dict(cls, data: dict) -> ImportReport:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


class _PatientState:
    """A patient as the file leaves it so far: stored values merged with accepted rows."""

    __slots__ = ("id", "version", "service_id", "stored", "values", "line", "latest")

    def __init__(self, service_id, stored_id, version, stored, values, line, latest):
        self.service_id = service_id
        self.id = stored_id
        self.version = version
        self.stored = stored  # the patient's stored values, None for a new patient
        self.values = values  # merged values, nhs_number included
        self.line = line  # the first accepted row of this patient in the file, if any
        self.latest = latest  # (date, field) of the latest date of the patient's episodes


@dataclass
class ImportPlan:
    """The checked writes of a file: patients in memory, episode rows in a spool on disk."""

    report: ImportReport
    patients: dict[tuple[int, str], _PatientState]
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

    @property
    def has_writes(self) -> bool:
        return bool(self.report.added or self.report.updated)

    def close(self) -> None:
        self.spool.close()


# Checking ---------------------------------------------------------------------------------


class _Checker:
    def __init__(self, columns: Columns, service: Service | None, today: date, on_refusal):
        self.columns = columns
        self.service = service
        self.today = today
        self.on_refusal = on_refusal
        self.report = ImportReport(unknown_columns=list(columns.unknown))
        self.patients: dict[tuple[int, str], _PatientState] = {}
        self.seen: dict[tuple[int, str, date], int] = {}
        self.services_written: set[int] = set()
        self.spool = tempfile.TemporaryFile()
        self.pending: list[tuple] = []
        self.services = {s.code: (s.id, s.active) for s in db.session.scalars(select(Service))}
        self.position = {name: i for i, name in enumerate(columns.headers)}

    # -- one chunk of rows ---------------------------------------------------------------

    def check_chunk(self, rows: list[tuple[int, list[str]]]) -> None:
        parsed = [self._parse(line, cells) for line, cells in rows]
        episodes = self._load(parsed)
        for row in parsed:
            self._check(row, episodes)
        if self.pending:
            pickle.dump(self.pending, self.spool, protocol=pickle.HIGHEST_PROTOCOL)
            self.pending = []

    def _parse(self, line: int, cells: list[str]) -> dict:
        columns = self.columns
        problems: list[tuple[str, str]] = []
        failed: set[str] = set()
        values: dict[str, Any] = {}
        for name, index in columns.fields.items():
            if name == "service_code":
                continue
            raw = cells[index] if index < len(cells) else ""
            try:
                value = parse_value(name, raw)
            except ValueProblem as problem:
                problems.append((columns.headers[index], str(problem)))
                failed.add(name)
                continue
            if value is not None:
                values[name] = value
        if columns.site_columns:
            raw = ";".join(
                cells[i] for i in columns.site_columns if i < len(cells) and cells[i].strip()
            )
            try:
                value = parse_value("fracture_sites", raw)
            except ValueProblem as problem:
                problems.append((columns.column_of("fracture_sites"), str(problem)))
                failed.add("fracture_sites")
            else:
                if value is not None:
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
                stored = {f: patient[f] for f in PATIENT_FIELDS}
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
        patient_changes = {}
        if state is not None:
            for name, new in patient_typed.items():
                old = state.values.get(name)
                if format_value(name, old) != format_value(name, new):
                    patient_changes[name] = (old, new)
            state.values = patient
            if state.line is None:
                state.line = line
        else:
            patient_changes = {k: (None, v) for k, v in patient.items() if v is not None}
            state = _PatientState(service_id, None, None, None, patient, line, None)
            self.patients[(service_id, nhs)] = state
        state.latest = _later(state.latest, _latest_date(episode))
        if stored_episode is None:
            episode_changes = {k: (None, v) for k, v in episode.items() if v is not None}
            full = {f: episode.get(f) for f in EPISODE_FIELDS}
            self.pending.append(("add", service_id, nhs, full, line))
            report.added += 1
            self.services_written.add(service_id)
            if len(report.to_add) < PREVIEW_LIMIT:
                report.to_add.append(
                    {
                        "line": line,
                        "nhs_number": nhs,
                        "fracture_date": episode["fracture_date"].isoformat(),
                    }
                )
            return
        episode_changes = {
            f: (stored_episode[f], episode[f])
            for f in EPISODE_FIELDS
            if format_value(f, stored_episode[f]) != format_value(f, episode[f])
        }
        if episode_changes:
            self.pending.append(
                (
                    "update",
                    service_id,
                    stored_episode["id"],
                    stored_episode["version"],
                    {f: episode[f] for f in EPISODE_FIELDS},
                    episode_changes,
                )
            )
        if not episode_changes and not patient_changes:
            report.unchanged += 1
            return
        report.updated += 1
        self.services_written.add(service_id)
        if len(report.to_update) < PREVIEW_LIMIT:
            report.to_update.append(
                {
                    "line": line,
                    "nhs_number": nhs,
                    "fracture_date": episode["fracture_date"].isoformat(),
                    "changes": {
                        name: [format_value(name, old), format_value(name, new)]
                        for name, (old, new) in (patient_changes | episode_changes).items()
                    },
                }
            )


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
    today = today or today_in_london()
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
        if progress is not None:
            progress(total, total)
    # The check reads only: end its transaction so the write starts on fresh data.
    db.session.rollback()
    return ImportPlan(
        report=checker.report,
        patients=checker.patients,
        spool=checker.spool,
        services_written=checker.services_written,
    )


# Writing ----------------------------------------------------------------------------------


def _batches(items: list, size: int = 1000) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _audit_row(now, user_id, remote_addr, service_id, action, entity_type, entity_id, changes):
    return {
        "at": now,
        "user_id": user_id,
        "service_id": service_id,
        "action": action,
        "entity_type": entity_type,
        "entity_id": entity_id,
        "changes": {k: [_plain(old), _plain(new)] for k, (old, new) in changes.items()}
        if changes
        else None,
        "detail": "CSV import",
        "remote_addr": remote_addr,
    }


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
    *,
    user_id: int | None,
    service_id: int | None = None,
    remote_addr: str | None = None,
    job: ImportJob | None = None,
) -> ImportJob:
    """Write a checked plan in the current transaction with bulk statements; the caller commits.

    Raises StaleRecords (the caller rolls back) when an episode or patient the plan updates was
    changed by someone else after the check.
    """
    report = plan.report
    now = datetime.utcnow()
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
            session.execute(insert(_audit), audit_rows)
            audit_rows.clear()

    # Patients: new ones inserted, changed ones updated, each audited.
    new_patients = [s for s in plan.patients.values() if s.id is None]
    changed_patients = [
        s
        for s in plan.patients.values()
        if s.id is not None
        and any(
            format_value(f, s.values.get(f)) != format_value(f, s.stored.get(f))
            for f in PATIENT_VALUE_FIELDS
        )
    ]
    _check_versions(_patients, {s.id: s.version for s in changed_patients})
    for batch in _batches(new_patients):
        rows = [
            {"service_id": s.service_id, "created_at": now, "updated_at": now, "version": 1}
            | {f: s.values.get(f) for f in PATIENT_FIELDS}
            for s in batch
        ]
        ids = (
            session.execute(
                insert(_patients).returning(_patients.c.id, sort_by_parameter_order=True), rows
            )
            .scalars()
            .all()
        )
        for state, new_id in zip(batch, ids, strict=True):
            state.id = new_id
            audit_rows.append(
                _audit_row(
                    now,
                    user_id,
                    remote_addr,
                    state.service_id,
                    "create",
                    "patient",
                    new_id,
                    {k: (None, v) for k, v in state.values.items() if v is not None},
                )
            )
            flush_audit()
    if changed_patients:
        statement = (
            update(_patients)
            .where(_patients.c.id == bindparam("_id"))
            .values(
                {f: bindparam(f) for f in PATIENT_VALUE_FIELDS}
                | {"version": _patients.c.version + 1, "updated_at": now}
            )
        )
        for batch in _batches(changed_patients):
            session.execute(
                statement,
                [{"_id": s.id} | {f: s.values.get(f) for f in PATIENT_VALUE_FIELDS} for s in batch],
            )
            for state in batch:
                changes = {
                    f: (state.stored.get(f), state.values.get(f))
                    for f in PATIENT_VALUE_FIELDS
                    if format_value(f, state.values.get(f)) != format_value(f, state.stored.get(f))
                }
                audit_rows.append(
                    _audit_row(
                        now,
                        user_id,
                        remote_addr,
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
        update(_episodes)
        .where(_episodes.c.id == bindparam("_id"))
        .values(
            {f: bindparam(f) for f in EPISODE_FIELDS if f != "fracture_date"}
            | {"version": _episodes.c.version + 1, "updated_at": now}
        )
    )

    def write_adds() -> None:
        rows = [
            {
                "service_id": service_id,
                "patient_id": plan.patients[(service_id, nhs)].id,
                "created_by_id": user_id,
                "created_at": now,
                "updated_at": now,
                "version": 1,
            }
            | values
            for _, service_id, nhs, values, _line in adds
        ]
        ids = (
            session.execute(
                insert(_episodes).returning(_episodes.c.id, sort_by_parameter_order=True), rows
            )
            .scalars()
            .all()
        )
        for (_, service_id, _nhs, values, _line), new_id in zip(adds, ids, strict=True):
            added_ids.append(new_id)
            audit_rows.append(
                _audit_row(
                    now,
                    user_id,
                    remote_addr,
                    service_id,
                    "create",
                    "episode",
                    new_id,
                    {k: (None, v) for k, v in values.items() if v is not None},
                )
            )
            flush_audit()
        adds.clear()

    def write_updates() -> None:
        _check_versions(_episodes, {op[2]: op[3] for op in updates})
        session.execute(
            update_statement,
            [{"_id": episode_id} | values for _, _s, episode_id, _v, values, _c in updates],
        )
        for _, service_id, episode_id, _version, _values, changes in updates:
            audit_rows.append(
                _audit_row(
                    now, user_id, remote_addr, service_id, "update", "episode", episode_id, changes
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
        _audit_row(now, user_id, remote_addr, job.service_id, "import", "import_job", job.id, None)
        | {
            "detail": (
                f"{report.file_name} (sha256 {report.sha256}): added {report.added}, "
                f"updated {report.updated}, unchanged {report.unchanged}, "
                f"refused {report.refused}"
            )
        }
    )
    flush_audit(force=True)
    return job


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
    *,
    service: Service | None,
    user_id: int | None,
    file_name: str | None = None,
    keep_valid: bool = False,
    dry_run: bool = False,
    max_bytes: int | None = None,
    remote_addr: str | None = None,
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
        apply_plan(
            plan,
            user_id=user_id,
            service_id=service.id if service is not None else None,
            remote_addr=remote_addr,
            job=job,
        )
        return report
    finally:
        plan.close()


def count_live_episodes(service_id: int) -> int:
    """How many episodes of a service are not deleted (for messages and exports)."""
    return db.session.scalar(
        select(func.count())
        .select_from(_episodes)
        .where(_episodes.c.service_id == service_id, _episodes.c.deleted_at.is_(None))
    )
