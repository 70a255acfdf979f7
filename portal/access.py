"""One place for "may this user see this": the current service and every record lookup.

A record of a service the user does not belong to answers 404 for every verb, admins included
(dataset.md, roles). A record of another of the user's own services switches to that service.
"""

from __future__ import annotations

from typing import NoReturn

from flask import abort, g, session
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import joinedload

from portal.extensions import db
from portal.models import Episode, Patient, Service


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
    service = db.session.get(Service, service_id)
    if service is None or service_id not in current_user.service_ids:
        _not_found("switch to a service the user does not belong to")
    session["service_id"] = service.id
    g.current_service = service
    return service


def require_current_service() -> Service:
    service = current_service()
    if service is None:
        _not_found("no service membership")
    return service


def _not_found(reason: str) -> NoReturn:
    from portal.security import deny

    deny(reason, status=404)


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


def get_episode(episode_id: int, *, include_deleted: bool = False) -> Episode:
    # The patient and the service come in the same query: every episode page and save reads
    # them (the service's state decides whether the record may be changed).
    episode = db.session.scalar(
        select(Episode)
        .where(Episode.id == episode_id)
        .options(joinedload(Episode.patient), joinedload(Episode.service))
    )
    if episode is None or (episode.deleted_at is not None and not include_deleted):
        abort(404)
    _own(episode.service_id)
    return episode
