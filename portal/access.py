"""One place for "may this user see this": the current service and every record lookup.

A record of a service the user does not belong to answers 404 for every verb, admins included
(dataset.md, roles). A record of another of the user's own services switches to that service.
"""

from __future__ import annotations

from functools import cache

from flask import abort, g, request, session
from flask_login import current_user
from sqlalchemy import bindparam, select
from sqlalchemy.orm import contains_eager

from portal.extensions import db
from portal.models import Episode, Patient, Service
from portal.models.stored import StoredEpisode, StoredPatient, StoredRow, StoredService


def current_service() -> Service | None:
    """The service the signed-in user is working in (chosen in the header)."""
    if not current_user.is_authenticated or not current_user.service_ids:
        return None
    if "current_service" in g:
        return g.current_service
    wanted = session.get("service_id")
    if wanted in current_user.service_ids:
        # From the identity map when the request has loaded it already (a record's service).
        service = db.session.get(Service, wanted)
    else:
        service = current_user.services[0]
        session["service_id"] = service.id  # written only when it changes: a new cookie is signed
    g.current_service = service
    return service


def switch_service(service_id: int) -> Service:
    if service_id not in current_user.service_ids:
        _not_found("switch to a service the user does not belong to")
    service = db.session.get(Service, service_id)
    session["service_id"] = service.id
    g.current_service = service
    return service


def require_current_service() -> Service:
    service = current_service()
    if service is None:
        _not_found("no service membership")
    return service


def _not_found(reason: str):
    from portal.audit import events as audit

    audit.record("permission_denied", detail=f"{request.method} {request.path}: {reason}")
    db.session.commit()
    abort(404)


def _own(record_service_id: int) -> None:
    if record_service_id not in current_user.service_ids:
        _not_found("record of a service the user does not belong to")
    if record_service_id != session.get("service_id"):
        switch_service(record_service_id)
    g.patient_data = True


def get_patient(patient_id: int) -> Patient:
    patient = db.session.get(Patient, patient_id)
    if patient is None:
        abort(404)
    _own(patient.service_id)
    return patient


@cache
def _episode_with_patient_and_service():
    """Built once, so SQLAlchemy keeps its cache key instead of working it out at every request.
    Plain joins filled into the relationships (every episode has both): cheaper to load than
    joined eager loads, which alias the tables and adapt each row."""
    return (
        select(Episode)
        .join(Episode.patient)
        .join(Episode.service)
        .options(contains_eager(Episode.patient), contains_eager(Episode.service))
        .where(Episode.id == bindparam("episode_id"))
    )


def get_episode(episode_id: int, *, include_deleted: bool = False) -> Episode:
    # The patient and the service come in the same query: every episode page and save reads
    # them (the service's state decides whether the record may be changed).
    episode = db.session.execute(
        _episode_with_patient_and_service(), {"episode_id": episode_id}
    ).scalar()
    if episode is None or (episode.deleted_at is not None and not include_deleted):
        abort(404)
    _own(episode.service_id)
    return episode


# The kinds read by get_stored_episode, in the order its statement selects their columns.
_STORED_KINDS = (StoredEpisode, StoredPatient, StoredService)


@cache
def _stored_episode_query():
    """The episode, its patient and its service in one Core statement (built once, as above):
    every column of each table, in that order. Selecting the tables, not their 57 columns, keeps
    the statement's cache key short: SQLAlchemy hashes it at every execution."""
    episodes, patients, services = (kind.__table__ for kind in _STORED_KINDS)
    return (
        select(episodes, patients, services)
        .join_from(episodes, patients, episodes.c.patient_id == patients.c.id)
        .join(services, episodes.c.service_id == services.c.id)
        .where(episodes.c.id == bindparam("episode_id"))
    )


@cache
def _stored_spans() -> tuple[tuple[type[StoredRow], tuple[str, ...], int], ...]:
    """(kind, its column keys, where its columns start in a row of _stored_episode_query)."""
    spans, start = [], 0
    for kind in _STORED_KINDS:
        keys = tuple(column.key for column in kind.__table__.c)
        spans.append((kind, keys, start))
        start += len(keys)
    return tuple(spans)


def get_stored_episode(episode_id: int) -> StoredEpisode:
    """An episode as get_episode finds it (a live episode of one of the user's services, or 404),
    read with Core: what a stage save needs, for a third of the ORM's cost (portal.models.stored)."""
    row = (
        db.session.connection().execute(_stored_episode_query(), {"episode_id": episode_id}).first()
    )
    if row is None:
        abort(404)
    episode, patient, service = (
        kind(dict(zip(keys, row[start : start + len(keys)], strict=True)))
        for kind, keys, start in _stored_spans()
    )
    if episode.deleted_at is not None:
        abort(404)
    episode.patient, episode.service = patient, service
    _own(episode.service_id)
    return episode


def require_writable(service: Service | StoredService) -> None:
    """An inactive service keeps its data; its records can be read but not changed."""
    if not service.active:
        abort(403, description="This service is inactive: its records can be read but not changed.")
