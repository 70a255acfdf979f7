"""Role x route matrix over every route the portal has (walked from the URL map, so a new route
is covered the day it is added): anonymous -> sign-in, wrong role -> 403, another service's
patient or episode -> 404 for every verb, admins included."""

from __future__ import annotations

from datetime import date

import pytest

from portal.models import Episode, Patient
from portal.security import allowed_roles, is_public
from tests.conftest import sign_in

ROLES = ("clinician", "lead", "admin")
RECORD_PARAMS = {"patient_id", "episode_id"}


def _rules(app):
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        yield rule


def _url(rule, values):
    from flask import url_for

    args = {name: values.get(name, 1) for name in rule.arguments}
    with_app = url_for(rule.endpoint, **args)
    return with_app


def _methods(rule):
    return sorted(m for m in rule.methods if m not in ("HEAD", "OPTIONS"))


def test_anonymous_is_sent_to_sign_in_everywhere_but_the_public_list(app, client):
    checked = 0
    with app.test_request_context():
        urls = [(rule, _url(rule, {})) for rule in _rules(app)]
    for rule, url in urls:
        for method in _methods(rule):
            response = client.open(url, method=method)
            if is_public(rule.endpoint):
                assert response.status_code != 401, url
                if response.status_code == 302:
                    assert "/auth/sign-in" not in response.headers[
                        "Location"
                    ] or rule.endpoint.startswith("auth."), url
                continue
            checked += 1
            assert response.status_code == 302, (method, url, response.status_code)
            if response.status_code == 302:
                assert "/auth/sign-in" in response.headers["Location"], (method, url)
            htmx = client.open(url, method=method, headers={"HX-Request": "true"})
            assert htmx.status_code == 401, (method, url, htmx.status_code)
    assert checked > 0


@pytest.mark.parametrize("role", ROLES)
def test_wrong_role_gets_403(app, make_service, make_user, role):
    service = make_service()
    user = make_user(role=role, services=[service] if role != "admin" else [service])
    client = app.test_client()
    sign_in(client, user)
    with app.test_request_context():
        urls = [(rule, _url(rule, {})) for rule in _rules(app)]
    refused = 0
    for rule, url in urls:
        roles = allowed_roles(app, rule.endpoint)
        if roles is None or role in roles or is_public(rule.endpoint):
            continue
        for method in _methods(rule):
            response = client.open(url, method=method)
            assert response.status_code == 403, (role, method, url, response.status_code)
            refused += 1
    if role != "admin":
        assert refused > 0


@pytest.mark.parametrize("role", ROLES)
def test_another_services_records_answer_404_for_every_verb(app, db, make_service, make_user, role):
    mine, theirs = make_service("BRD"), make_service("OTH")
    patient = Patient(
        service_id=theirs.id, nhs_number="9434765919", date_of_birth=date(1950, 1, 1), sex="Female"
    )
    db.session.add(patient)
    db.session.flush()
    episode = Episode(
        service_id=theirs.id,
        patient_id=patient.id,
        fracture_date=date(2024, 5, 1),
        fracture_sites="Hip",
    )
    db.session.add(episode)
    db.session.commit()
    before = (patient.version, episode.version)
    user = make_user(role=role, services=[mine])
    client = app.test_client()
    sign_in(client, user)
    values = {"patient_id": patient.id, "episode_id": episode.id}
    with app.test_request_context():
        urls = [
            (rule, _url(rule, values))
            for rule in _rules(app)
            if RECORD_PARAMS & set(rule.arguments)
        ]
    for rule, url in urls:
        roles = allowed_roles(app, rule.endpoint)
        for method in _methods(rule):
            response = client.open(url, method=method)
            expected = (404,) if roles is None or role in roles else (403, 404)
            assert response.status_code in expected, (role, method, url, response.status_code)
    db.session.expire_all()
    assert (
        db.session.get(Patient, patient.id).version,
        db.session.get(Episode, episode.id).version,
    ) == before
