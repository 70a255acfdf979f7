"""Stored rows read with Core, as plain objects with the mapped classes' attribute names.

A stage save reads one episode with its patient and service, checks it, writes the changed fields
with Core (services.versions.record_update) and answers with the section. Reading that row through
the ORM cost a save 0.87 M instructions, most of it SQLAlchemy setting up its row processing for
the three tables' 57 columns at every query; the same row read with Core costs 0.29 M
(docs/bench-journey.md). These objects hold the same values and nothing else: no relationships to
load, no unit of work. Pages that walk relationships (a patient's episodes) load ORM instances.
"""

from __future__ import annotations

from typing import Any, ClassVar

from sqlalchemy import Table

from portal.models.clinical import Episode, Patient
from portal.models.service import Service


class StoredRow:
    """A row's columns as attributes; a save sets the values it wrote (record_update)."""

    __table__: ClassVar[Table]
    __tablename__: ClassVar[str]

    def __init__(self, values: dict[str, Any]):
        self.__dict__.update(values)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.__dict__.get('id')}>"


class StoredService(StoredRow):
    __table__ = Service.__table__
    __tablename__ = Service.__tablename__


class StoredPatient(StoredRow):
    __table__ = Patient.__table__
    __tablename__ = Patient.__tablename__


class StoredEpisode(StoredRow):
    """An episode with its patient and service (`episode.patient`, `episode.service`)."""

    __table__ = Episode.__table__
    __tablename__ = Episode.__tablename__
    patient: StoredPatient
    service: StoredService
