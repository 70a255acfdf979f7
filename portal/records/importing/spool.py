"""Where checked rows wait between the check and the write: on disk, so that memory does not grow
with the file.

- `PatientIndex`: the patients and episode keys the file has met, in a private temporary SQLite
  database (on disk once past a small cache).
- `EpisodeSpool`: the episodes to add and update, pickled a chunk at a time to a temporary file.
- `ImportPlan`: both, with the report: what `apply_plan` writes.
"""

from __future__ import annotations

import pickle
import sqlite3
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from typing import IO, Any, NamedTuple

from kpis.dataset import DIRECT_CARE_FIELDS, PATIENT_FIELDS
from portal.journey.rules import format_value
from portal.records.importing.report import Changes, ImportReport

# A patient's fields other than its key: the FLS-DB-based ones, then the direct-care ones
# (issue 18; an empty or missing cell leaves the stored value alone, as for every field).
PATIENT_VALUE_FIELDS = tuple(f for f in PATIENT_FIELDS if f != "nhs_number") + DIRECT_CARE_FIELDS
STORED_PATIENT_FIELDS = PATIENT_FIELDS + DIRECT_CARE_FIELDS
# SQLite's limit of parameters per statement is 999 in older builds.
_KEYS_PER_QUERY = 900

# (service id, NHS number)
PatientKey = tuple[int, str]
# (service id, NHS number, fracture date): an episode's key (dataset.md, "Merging").
EpisodeKey = tuple[int, str, date]
# The latest date of a patient's episodes so far and the field that holds it.
LatestDate = tuple[date, str]


class PatientState:
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
        "place",
    )

    def __init__(
        self,
        service_id: int,
        values: dict[str, Any],
        *,
        stored_id: int | None = None,
        version: int | None = None,
        stored: dict[str, Any] | None = None,
        line: int | None = None,
    ) -> None:
        self.service_id = service_id
        self.id = stored_id
        self.version = version
        self.stored = stored  # the patient's stored values, None for a new patient
        self.values = values  # merged values, nhs_number included
        self.line = line  # the first accepted row of this patient in the file, if any
        self.latest: LatestDate | None = None  # of the patient's episodes, for date of death
        self.last_line: int | None = None  # the last accepted row of this patient
        self.last_unchanged = False  # whether that row left its episode unchanged
        self.place: int | None = None  # a new patient's place among the file's new patients

    @property
    def nhs_number(self) -> str:
        number: str = self.values["nhs_number"]
        return number

    def id_and_version(self) -> tuple[int, int]:
        """A stored patient's id and the version the file was checked against."""
        assert self.id is not None and self.version is not None, "a stored patient"
        return self.id, self.version

    def changes(self) -> Changes:
        """{field: (stored, new)} of a stored patient's fields the file changes."""
        stored = self.stored or {}
        return {
            f: (stored.get(f), self.values.get(f))
            for f in PATIENT_VALUE_FIELDS
            if self.values.get(f) != stored.get(f)
            and format_value(f, self.values.get(f)) != format_value(f, stored.get(f))
        }


class EpisodeAddition(NamedTuple):
    """A new episode: its values in EPISODE_FIELDS order (its audit entry is made from them)."""

    service_id: int
    patient_id: int | None  # a stored patient's id, or None for a new patient ...
    new_patient: int | None  # ... then its place among the file's new patients
    values: tuple[Any, ...]


class EpisodeUpdate(NamedTuple):
    """A stored episode's merged values in EPISODE_FIELDS order, and the version checked."""

    service_id: int
    episode_id: int
    version: int
    values: tuple[Any, ...]
    changes: dict[str, list[Any]]


EpisodeWrite = EpisodeAddition | EpisodeUpdate


def _patient_number(key: PatientKey) -> int:
    service_id, nhs_number = key
    return service_id * 10**10 + int(nhs_number)


class PatientIndex:
    """The patients and episode keys a file has met, kept in a private temporary SQLite
    database (on disk once past a small cache) so that memory does not grow with the file."""

    def __init__(self) -> None:
        # "" opens a temporary database of its own, removed when closed.
        self.db = sqlite3.connect("", isolation_level=None)
        self.db.execute("PRAGMA journal_mode=OFF")
        self.db.execute("PRAGMA synchronous=OFF")
        self.db.execute(
            "CREATE TABLE p (key INTEGER PRIMARY KEY, place INTEGER, stored INTEGER, data BLOB)"
        )
        self.db.execute(
            "CREATE TABLE e (pkey INTEGER, day INTEGER, line INTEGER, PRIMARY KEY (pkey, day))"
            " WITHOUT ROWID"
        )

    def _by_patient(self, query: str, keys: list[PatientKey]) -> Iterator[tuple[PatientKey, Any]]:
        """Rows of `query` (its first column a patient's number, `{marks}` its parameters) for
        the given patients, with their keys."""
        numbers = {_patient_number(key): key for key in keys}
        wanted = list(numbers)
        for start in range(0, len(wanted), _KEYS_PER_QUERY):
            part = wanted[start : start + _KEYS_PER_QUERY]
            marks = ",".join("?" * len(part))
            for number, *rest in self.db.execute(query.format(marks=marks), part):
                yield numbers[number], rest

    def patients(self, keys: list[PatientKey]) -> dict[PatientKey, PatientState]:
        """The patients met so far among these."""
        query = "SELECT key, data FROM p WHERE key IN ({marks})"
        return {key: pickle.loads(data) for key, (data,) in self._by_patient(query, keys)}

    def lines(self, keys: list[PatientKey]) -> dict[EpisodeKey, int]:
        """The line of each episode met so far of these patients."""
        query = "SELECT pkey, day, line FROM e WHERE pkey IN ({marks})"
        return {
            (*key, date.fromordinal(day)): line
            for key, (day, line) in self._by_patient(query, keys)
        }

    def keep(
        self, states: dict[PatientKey, PatientState], lines: list[tuple[EpisodeKey, int]]
    ) -> None:
        """Keep (or replace) these patients and add these episodes' lines."""
        self.db.execute("BEGIN")
        self.db.executemany(
            "INSERT OR REPLACE INTO p (key, place, stored, data) VALUES (?, ?, ?, ?)",
            [
                (
                    _patient_number(key),
                    state.place,
                    state.stored is not None,
                    pickle.dumps(state, pickle.HIGHEST_PROTOCOL),
                )
                for key, state in states.items()
            ],
        )
        self.db.executemany(
            "INSERT OR REPLACE INTO e (pkey, day, line) VALUES (?, ?, ?)",
            [
                (_patient_number((service_id, nhs_number)), day.toordinal(), line)
                for (service_id, nhs_number, day), line in lines
            ],
        )
        self.db.execute("COMMIT")

    def _each(self, query: str) -> Iterator[PatientState]:
        for (data,) in self.db.execute(query):
            yield pickle.loads(data)

    def stored_patients(self) -> Iterator[PatientState]:
        """The stored patients the file names."""
        return self._each("SELECT data FROM p WHERE stored = 1 ORDER BY key")

    def new_patients(self) -> Iterator[PatientState]:
        """The file's new patients, by their place among them."""
        return self._each("SELECT data FROM p WHERE place IS NOT NULL ORDER BY place")

    def close(self) -> None:
        self.db.close()


class EpisodeSpool:
    """The episodes to write, in file order, pickled a chunk at a time to a temporary file."""

    def __init__(self) -> None:
        self.file: IO[bytes] = tempfile.TemporaryFile()
        self.pending: list[EpisodeWrite] = []

    def add(self, write: EpisodeWrite) -> None:
        self.pending.append(write)

    def flush(self) -> None:
        """Move the pending writes to disk (once per chunk of rows)."""
        if self.pending:
            pickle.dump(self.pending, self.file, protocol=pickle.HIGHEST_PROTOCOL)
            self.pending = []

    def __iter__(self) -> Iterator[EpisodeWrite]:
        self.flush()
        self.file.seek(0)
        while True:
            try:
                batch: list[EpisodeWrite] = pickle.load(self.file)
            except EOFError:
                return
            yield from batch

    def close(self) -> None:
        self.file.close()


@dataclass
class ImportPlan:
    """The checked writes of a file: patients in a temporary index, episodes in a spool, both on
    disk, and the report."""

    report: ImportReport
    index: PatientIndex
    spool: EpisodeSpool
    new_patients: int
    services_written: set[int]

    def close(self) -> None:
        self.spool.close()
        self.index.close()
