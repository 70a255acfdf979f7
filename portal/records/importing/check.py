"""Checking a file: every row against the dataset rules and the stored records, merged as
dataset.md says ("CSV: import and export", "Merging"). Writes nothing; what is to be written
waits in an ImportPlan (spool.py).

An episode is identified by (service, nhs_number, fracture_date). A row for a stored episode
updates it: an empty cell leaves the stored value alone, and the merged episode is checked as a
whole. A row whose date of birth or sex differs from the stored patient, or from an earlier row of
the same patient, is refused; postcode, care home and date of death take the last row's value. The
same episode twice in one file: the second is refused.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable
from datetime import date
from pathlib import Path
from typing import Any

from sqlalchemy import Table, select

from kpis.dataset import EPISODE_FIELDS
from portal import clock
from portal.audit.events import plain
from portal.extensions import db
from portal.journey.rules import (
    EPISODE_DATES,
    check_patient_dates,
    check_record,
    format_value,
    uk_date,
)
from portal.models import Service
from portal.models.base import Base
from portal.records import csv_files as csv_reading
from portal.records import direct_care
from portal.records.csv_files import Columns, FileRefused
from portal.records.importing.cells import ReadRow, RowReader, label
from portal.records.importing.report import (
    Changes,
    ImportReport,
    Problem,
    Refusal,
    audit_changes,
)
from portal.records.importing.spool import (
    PATIENT_VALUE_FIELDS,
    STORED_PATIENT_FIELDS,
    EpisodeAddition,
    EpisodeKey,
    EpisodeSpool,
    EpisodeUpdate,
    ImportPlan,
    LatestDate,
    PatientIndex,
    PatientKey,
    PatientState,
)

# Rows checked at a time: one query for their stored patients, one for their episodes.
CHUNK_ROWS = 1000
LOCKED_FOR_IMPORT = "complete for the audit; a service lead can reopen it"

_episodes: Table = Base.metadata.tables["episodes"]
_patients: Table = Base.metadata.tables["patients"]

# Stored episodes of a chunk's patients, by (patient id, fracture date).
StoredEpisodes = dict[tuple[int, date], dict[str, Any]]


class Checker:
    """Checks the rows of one file a chunk at a time, keeping what the file has met so far in a
    PatientIndex and what is to be written in an EpisodeSpool."""

    def __init__(
        self,
        columns: Columns,
        service: Service | None,
        today: date,
        on_refusal: Callable[[Refusal], None] | None,
    ) -> None:
        self.columns = columns
        self.reader = RowReader(columns, service)
        self.today = today
        self.on_refusal = on_refusal
        self.report = ImportReport(unknown_columns=list(columns.unknown))
        self.index = PatientIndex()
        self.spool = EpisodeSpool()
        self.new_patients = 0
        self.services_written: set[int] = set()
        # The patients and episode keys of the chunk being checked (the rest is in the index).
        self.patients: dict[PatientKey, PatientState] = {}
        self.seen: dict[EpisodeKey, int] = {}
        self.new_lines: list[tuple[EpisodeKey, int]] = []
        self.position = {name: i for i, name in enumerate(columns.headers)}
        self.hospital_numbers = direct_care.HospitalNumbers()

    def plan(self) -> ImportPlan:
        return ImportPlan(
            report=self.report,
            index=self.index,
            spool=self.spool,
            new_patients=self.new_patients,
            services_written=self.services_written,
        )

    # -- one chunk of rows ---------------------------------------------------------------

    def check_chunk(self, rows: list[tuple[int, list[str]]]) -> None:
        read = [self.reader.read(line, cells) for line, cells in rows]
        keys = list({key for row in read if (key := _patient_key(row)) is not None})
        self.patients = self.index.patients(keys)
        self.seen = self.index.lines(keys)
        self.hospital_numbers.load(read)
        episodes = self._load(read)
        for row in read:
            self._check(row, episodes)
        self.index.keep(self.patients, self.new_lines)
        self.patients, self.seen, self.new_lines = {}, {}, []
        self.spool.flush()

    def _load(self, rows: list[ReadRow]) -> StoredEpisodes:
        """Load the stored patients of this chunk not met before, and all their episodes."""
        loaded = self._load_patients(rows)
        by_id: dict[int, PatientState] = {}
        for row in rows:
            key = _patient_key(row)
            state = self.patients.get(key) if key is not None else None
            if state is not None and state.id is not None:
                by_id[state.id] = state
        episodes: StoredEpisodes = {}
        if not by_id:
            return episodes
        for stored in db.session.execute(
            select(_episodes).where(_episodes.c.patient_id.in_(list(by_id)))
        ).mappings():
            episode = dict(stored)
            episodes[(episode["patient_id"], episode["fracture_date"])] = episode
            if episode["patient_id"] in loaded and episode["deleted_at"] is None:
                # The latest date of the patient's stored episodes, for date of death checks.
                state = by_id[episode["patient_id"]]
                state.latest = _later(state.latest, _latest_date(episode))
        return episodes

    def _load_patients(self, rows: list[ReadRow]) -> set[int]:
        """Load the stored patients of these rows not met before; their ids."""
        wanted: dict[int, set[str]] = {}
        for row in rows:
            key = _patient_key(row)
            if key is not None and key not in self.patients:
                wanted.setdefault(key[0], set()).add(key[1])
        loaded: set[int] = set()
        for service_id, numbers in wanted.items():
            for patient in db.session.execute(
                select(_patients).where(
                    _patients.c.service_id == service_id, _patients.c.nhs_number.in_(numbers)
                )
            ).mappings():
                stored = {f: patient[f] for f in STORED_PATIENT_FIELDS}
                loaded.add(patient["id"])
                self.patients[(service_id, patient["nhs_number"])] = PatientState(
                    service_id,
                    dict(stored),
                    stored_id=patient["id"],
                    version=patient["version"],
                    stored=stored,
                )
        return loaded

    # -- one row -------------------------------------------------------------------------

    def _check(self, row: ReadRow, episodes: StoredEpisodes) -> None:
        self.report.rows += 1
        values = row.values
        problems = list(row.problems)
        column_of = self.columns.column_of
        key = _episode_key(row)
        # The rules of a merge apply to a row with its whole key, met for the first time.
        merges = key is not None
        if key is not None:
            first_line = self.seen.setdefault(key, row.line)
            if first_line != row.line:
                problems.append((column_of("fracture_date"), f"duplicate of line {first_line}"))
                merges = False
            else:
                self.new_lines.append((key, row.line))
        state = self.patients.get((key[0], key[1])) if key is not None else None
        stored_episode = (
            episodes.get((state.id, values["fracture_date"]))
            if state is not None and state.id is not None
            else None
        )
        if stored_episode is not None and stored_episode["deleted_at"] is not None:
            problems.append((column_of("fracture_date"), "deleted; an admin can restore it"))
            merges = False
            stored_episode = None
        patient_typed = {f: values[f] for f in PATIENT_VALUE_FIELDS if f in values}
        if state is not None:
            problems += self._another_person(state, patient_typed, row)
        if key is not None:
            problems += self.hospital_numbers.problems(key[0], key[1], patient_typed, column_of)
        patient = (
            dict(state.values) if state is not None else {"nhs_number": values.get("nhs_number")}
        )
        patient.update(patient_typed)
        if stored_episode is not None:
            episode = {f: stored_episode[f] for f in EPISODE_FIELDS}
        else:
            episode = {"fracture_date": values.get("fracture_date")}
        episode.update({f: v for f, v in values.items() if f in EPISODE_FIELDS})
        if stored_episode is not None and stored_episode.get("audit_complete_at") is not None:
            problems += _locked_change(stored_episode, row, column_of)
        if merges:
            problems += self._rule_problems(state, patient, episode, row)
        if problems:
            self._refuse(row.line, problems)
            return
        assert key is not None  # a row without its key is refused above
        self.hospital_numbers.claim(row.line, key[0], key[1], patient_typed)
        direct_care.warn(self.report, row.line, column_of, stored_episode, episode, self.today)
        state = self._keep_patient(row, state, patient, episode)
        if stored_episode is None:
            self._add(row, state, episode)
        else:
            self._update(row, state, stored_episode, episode)

    def _another_person(
        self, state: PatientState, typed: dict[str, Any], row: ReadRow
    ) -> list[Problem]:
        """A date of birth or sex other than the stored patient's or an earlier row's: it may be
        another person."""
        problems: list[Problem] = []
        for name in ("date_of_birth", "sex"):
            mine, theirs = typed.get(name), state.values.get(name)
            if mine is not None and theirs is not None and mine != theirs:
                where = f"line {state.line}" if state.line is not None else "the stored patient"
                problems.append(
                    (
                        self.columns.column_of(name),
                        f"{label(name)} differs from {where} ({_shown(name, theirs)}): "
                        "it may be another person",
                    )
                )
                row.failed.add(name)
        return problems

    def _rule_problems(
        self,
        state: PatientState | None,
        patient: dict[str, Any],
        episode: dict[str, Any],
        row: ReadRow,
    ) -> list[Problem]:
        """The dataset's rules on the merged patient and episode; a new date of death also
        against the patient's other episodes."""
        problems = check_record(patient, episode, self.today)
        died = patient.get("date_of_death")
        if (
            state is not None
            and died is not None
            and died != state.values.get("date_of_death")
            and state.latest is not None
        ):
            day, name = state.latest
            for field, message in check_patient_dates(patient, [{name: day}], self.today).items():
                problems.setdefault(field, message)
        return [
            (self.columns.column_of(name), message)
            for name, message in problems.items()
            if name not in row.failed
        ]

    def _refuse(self, line: int, problems: list[Problem]) -> None:
        # In the file's column order (a rule's column may be missing from the file: last).
        end = len(self.position)
        problems.sort(key=lambda p: self.position.get(p[0], end))
        self.report.refuse(line, problems, self.on_refusal)

    def _keep_patient(
        self,
        row: ReadRow,
        state: PatientState | None,
        patient: dict[str, Any],
        episode: dict[str, Any],
    ) -> PatientState:
        """The patient as this accepted row leaves it."""
        if state is not None:
            state.values = patient
            if state.line is None:
                state.line = row.line
        else:
            assert row.service_id is not None  # an accepted row has its whole key
            state = PatientState(row.service_id, patient, line=row.line)
            state.place = self.new_patients
            self.new_patients += 1
            self.patients[(row.service_id, state.nhs_number)] = state
        state.last_line = row.line
        state.last_unchanged = False
        state.latest = _later(state.latest, _latest_date(episode))
        return state

    def _add(self, row: ReadRow, state: PatientState, episode: dict[str, Any]) -> None:
        service_id = state.service_id
        self.spool.add(
            EpisodeAddition(
                service_id,
                patient_id=state.id,
                new_patient=state.place if state.id is None else None,
                values=tuple(episode.get(f) for f in EPISODE_FIELDS),
            )
        )
        self.services_written.add(service_id)
        self.report.count_addition(row.line, state.nhs_number, episode["fracture_date"])

    def _update(
        self,
        row: ReadRow,
        state: PatientState,
        stored: dict[str, Any],
        episode: dict[str, Any],
    ) -> None:
        changes = _episode_changes(stored, episode)
        if not changes:
            # Whether the patient's own fields change is known only at the end of the file.
            self.report.unchanged += 1
            state.last_unchanged = True
            return
        self.spool.add(
            EpisodeUpdate(
                state.service_id,
                episode_id=stored["id"],
                version=stored["version"],
                values=tuple(episode[f] for f in EPISODE_FIELDS),
                changes=audit_changes(changes),
            )
        )
        self.services_written.add(state.service_id)
        self.report.count_update(row.line, state.nhs_number, episode["fracture_date"], changes)

    def finish(self) -> None:
        """Patients whose stored fields the file changes (postcode, care home, date of death):
        the change is the patient's last row's, which counts as an update."""
        for state in self.index.stored_patients():
            if state.last_line is None:
                continue
            changes = state.changes()
            if not changes:
                continue
            self.services_written.add(state.service_id)
            self.report.count_patient_update(
                state.last_line,
                state.nhs_number,
                changes,
                row_was_unchanged=state.last_unchanged,
            )
        self.report.sort_preview()


def _patient_key(row: ReadRow) -> PatientKey | None:
    nhs_number = row.values.get("nhs_number")
    if row.service_id is None or nhs_number is None:
        return None
    return (row.service_id, nhs_number)


def _episode_key(row: ReadRow) -> EpisodeKey | None:
    fracture_date = row.values.get("fracture_date")
    key = _patient_key(row)
    if key is None or fracture_date is None:
        return None
    return (*key, fracture_date)


def _episode_changes(stored: dict[str, Any], episode: dict[str, Any]) -> Changes:
    return {
        f: (stored[f], episode[f])
        for f in EPISODE_FIELDS
        # Equal values need no formatting; different ones may still be the same (1 and 1.0).
        if stored[f] != episode[f] and format_value(f, stored[f]) != format_value(f, episode[f])
    }


def _shown(name: str, value: Any) -> str:
    return uk_date(value) if isinstance(value, date) else format_value(name, value)


def _latest_date(episode: dict[str, Any]) -> LatestDate | None:
    latest: LatestDate | None = None
    for name in EPISODE_DATES:
        day = episode.get(name)
        if day is not None and (latest is None or day > latest[0]):
            latest = (day, name)
    return latest


def _later(a: LatestDate | None, b: LatestDate | None) -> LatestDate | None:
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
    total = max(facts.lines - 1, 0)
    with csv_reading.open_text(path, facts.encoding) as stream:
        columns = _columns(stream, service)
        checker = Checker(columns, service, today or clock.today(), on_refusal)
        checker.report.file_name = file_name or path.name
        checker.report.sha256 = facts.sha256
        for done in _check_rows(checker, csv_reading.read_rows(stream)):
            if progress is not None:
                progress(min(done, total), total)
        checker.finish()
        if progress is not None:
            progress(total, total)
    # The check reads only: end its transaction so the write starts on fresh data.
    db.session.rollback()
    return checker.plan()


def _columns(stream: io.TextIOBase, service: Service | None) -> Columns:
    """The file's header mapped to fields; FileRefused when the import cannot go on."""
    columns = csv_reading.map_header(csv_reading.read_header(stream))
    if service is None and "service_code" not in columns.fields:
        raise FileRefused("Choose the service to import into, or give a service_code column")
    if service is not None and not service.active:
        raise FileRefused(
            f"Service {service.code} is inactive: its records can be read but not changed"
        )
    return columns


def _check_rows(checker: Checker, rows: Iterable[tuple[int, list[str]]]) -> Iterable[int]:
    """Check the rows CHUNK_ROWS at a time; after each full chunk, the rows done so far."""
    chunk: list[tuple[int, list[str]]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= CHUNK_ROWS:
            checker.check_chunk(chunk)
            yield chunk[-1][0] - 1
            chunk = []
    if chunk:
        checker.check_chunk(chunk)


def _locked_change(
    stored_episode: Any, row: ReadRow, column_of: Callable[[str], str]
) -> list[tuple[str, str]]:
    """An episode complete for the audit is locked against changes, an import's too (issue 19):
    the first field the row would change is refused; a row that changes nothing passes."""
    for name in EPISODE_FIELDS:
        if name in row.values and plain(row.values[name]) != plain(stored_episode[name]):
            row.failed.add(name)
            return [(column_of(name), LOCKED_FOR_IMPORT)]
    return []
