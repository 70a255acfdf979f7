"""Tests that try to break it (security.md): every state-changing route without a CSRF token is
refused and changes nothing; another service's ids change nothing; fields a user may not set are
ignored; XSS payloads in every text field and query parameter come back escaped."""

from __future__ import annotations

import io
import re
from datetime import timedelta

import pytest
from werkzeug.datastructures import MultiDict

from tests.conftest import TEST_TODAY, sign_in
from tests.integration.journey.conftest import nhs_number, registration
from tests.security.routes import all_routes, get_routes, state_changing_routes

XSS = "\"'><script>alert(1)</script><img src=x onerror=alert(2)>"
RAW_MARKERS = ("<script>alert(1)", "<img src=x onerror")


def figures(db) -> dict:
    """Every table's rows and checksum (the backup's figures) in the request's own view."""
    from portal.operations import backups as backup

    db.session.remove()
    with db.engine.connect() as connection:
        return backup.table_figures(connection)


def without(tables: dict, *names: str) -> dict:
    return {k: v for k, v in tables.items() if k not in names}


def _form_for(route, values) -> MultiDict:
    """Plausible data for a route, so a refusal is the CSRF check and not an empty form."""
    if route.endpoint == "journey.register_patient":
        return registration(nhs_number(77), TEST_TODAY - timedelta(days=10))
    form = MultiDict(
        {
            "reason": "entered on the wrong patient",
            "confirm": "yes",
            "service_id": str(values["service_id"]),
            "display_name": "New name",
            "role": "admin",
            "code": "123456",
            "submission_id": "3d3c59a5-8a2e-4a39-9d7b-3d0a3bd7e1a1",
        }
    )
    return form


@pytest.mark.parametrize("role", ["clinician", "lead", "admin"])
def test_every_state_changing_route_without_csrf_token_is_refused(
    app, client, db, world, make_user, role
):
    mine, _theirs, records = world
    user = make_user(role=role, services=[mine])
    sign_in(client, user)
    before = figures(db)
    routes = state_changing_routes(app)
    assert len(routes) >= 15
    for route in routes:
        path = route.path(**records["BRD"])
        for method in sorted(route.methods & {"POST", "PUT", "PATCH", "DELETE"}):
            for headers in ({}, {"HX-Request": "true"}):
                response = client.open(
                    path,
                    method=method,
                    data=_form_for(route, records["BRD"]),
                    headers=headers,
                    csrf=False,
                )
                assert response.status_code in (400, 403), (
                    role,
                    method,
                    path,
                    response.status_code,
                )
            # A token of another session is refused too.
            stranger = app.test_client()
            response = client.open(
                path,
                method=method,
                data=_form_for(route, records["BRD"]),
                headers={"X-CSRFToken": stranger.csrf_token()},
                csrf=False,
            )
            assert response.status_code in (400, 403), (role, method, path, response.status_code)
    assert without(figures(db), "audit_events") == without(before, "audit_events")


def test_no_state_change_on_get(app, client, db, world, make_user):
    """Every GET route, as every role, changes no record (views are audited, nothing else)."""
    mine, _, records = world
    for role in ("clinician", "lead", "admin"):
        client = app.test_client()
        sign_in(client, make_user(role=role, services=[mine]))
        before = without(figures(db), "audit_events", "users")
        for route in get_routes(app):
            with client.get(route.path(**records["BRD"])) as response:
                assert response.status_code < 500, route
        assert without(figures(db), "audit_events", "users") == before, role


@pytest.mark.parametrize("role", ["clinician", "lead", "admin"])
def test_another_services_ids_change_nothing_on_any_route(app, client, db, world, make_user, role):
    mine, _theirs, records = world
    sign_in(client, make_user(role=role, services=[mine]))
    before = without(figures(db), "audit_events", "users")
    for route in all_routes(app):
        if not (
            {"patient_id", "episode_id", "job_id"}
            & set(re.findall(r"<(?:\w+:)?(\w+)>", route.rule))
        ):
            continue
        path = route.path(**records["OTH"])
        for method in sorted(route.methods):
            response = client.open(path, method=method, data=_form_for(route, records["OTH"]))
            assert response.status_code in (403, 404), (role, method, path, response.status_code)
            body = response.get_data(as_text=True)
            assert nhs_number(2) not in body, (method, path)
    assert without(figures(db), "audit_events", "users") == before


def test_fields_a_user_may_not_set_are_ignored_on_registration(client, db, world, make_user):
    from portal.models import Episode, Patient

    mine, theirs, _ = world
    user = make_user(role="clinician", services=[mine])
    other = make_user(role="clinician", services=[theirs])
    sign_in(client, user)
    form = registration(nhs_number(55), TEST_TODAY - timedelta(days=5))
    for name, value in {
        "service_id": theirs.id,
        "service": "OTH",
        "created_by_id": other.id,
        "updated_by_id": other.id,
        "deleted_at": "2020-01-01",
        "id": 999,
        "patient_id": 1,
        "role": "admin",
    }.items():
        form[name] = str(value)
    response = client.post("/patients/new", data=form)
    assert response.status_code == 303, response.get_data(as_text=True)[:2000]
    db.session.remove()
    patient = db.session.query(Patient).filter_by(nhs_number=nhs_number(55)).one()
    assert patient.service_id == mine.id and patient.id != 999
    episode = db.session.query(Episode).filter_by(patient_id=patient.id).one()
    assert episode.service_id == mine.id and episode.deleted_at is None
    for column in ("created_by_id", "updated_by_id"):
        if hasattr(episode, column):
            assert getattr(episode, column) in (None, user.id), column


def test_fields_a_user_may_not_set_are_ignored_on_own_account(client, db, make_user, make_service):
    from portal.models import User

    service = make_service("BRD")
    user = make_user(role="clinician", services=[service])
    sign_in(client, user)
    response = client.post(
        "/auth/password",
        data={
            "current_password": "correct-horse-battery-9",
            "password": "a new and long passphrase 7",
            "confirm": "a new and long passphrase 7",
            "role": "admin",
            "active": "y",
            "email": "someone.else@nhs.test",
            "services": "999",
        },
    )
    assert response.status_code == 302
    db.session.remove()
    again = db.session.get(User, user.id)
    assert (again.role, again.email, again.service_ids) == ("clinician", user.email, {service.id})


def _no_raw_payload(response, where: str) -> None:
    assert response.status_code < 500, (where, response.status_code)
    body = response.get_data(as_text=True)
    for marker in RAW_MARKERS:
        assert marker not in body, where


QUERY_NAMES = (
    "nhs_number",
    "nhs",
    "q",
    "sort",
    "order",
    "status",
    "page",
    "from",
    "to",
    "as_of",
    "service",
    "user",
    "action",
    "entity_type",
    "entity_id",
    "date_from",
    "date_to",
    "next",
    "year",
)


@pytest.mark.parametrize("role", ["clinician", "lead", "admin"])
def test_xss_in_every_query_parameter_of_every_get_route_is_escaped(
    app, client, world, make_user, role
):
    mine, _, records = world
    sign_in(client, make_user(role=role, services=[mine]))
    query = {name: XSS for name in QUERY_NAMES}
    for route in get_routes(app):
        path = route.path(**records["BRD"])
        _no_raw_payload(client.get(path, query_string=query), path)
        _no_raw_payload(client.get(path, query_string=query, headers={"HX-Request": "true"}), path)


def test_xss_in_text_fields_is_escaped_where_shown(app, client, db, world, make_user):
    from portal.models import Episode, Patient

    mine, _, records = world
    admin = make_user(role="admin", services=[mine])
    sign_in(client, admin)
    # Admin text fields: a user's name and a service's name.
    client.post(
        "/admin/users/new",
        data={
            "email": "x@nhs.test",
            "display_name": XSS,
            "role": "clinician",
            "services": [mine.id],
        },
    )
    client.post(
        "/admin/services/new",
        data={"code": "XSS", "name": XSS, "nation": "England", "expected_caseload": "100"},
    )
    for path in ("/admin/users", "/admin/services", "/audit/", "/kpis/", "/benchmarks/"):
        _no_raw_payload(client.get(path), path)
    client.post("/auth/sign-out")

    lead = make_user(role="lead", services=[mine])
    sign_in(client, lead)
    # Registration: every text input carries the payload; the refusal shows what was typed.
    form = registration(nhs_number(66), TEST_TODAY - timedelta(days=3))
    for key in list(form.keys()):
        # submission_id and version are controls of the save, not data (a new record has none).
        if key not in ("submission_id", "version", "fracture_sites"):
            refused = form.copy()
            refused[key] = XSS
            _no_raw_payload(client.post("/patients/new", data=refused), f"register {key}")
            db.session.remove()
            assert db.session.query(Patient).filter_by(nhs_number=nhs_number(66)).count() == 0, key
            _no_raw_payload(
                client.post("/patients/new", data=refused, headers={"HX-Request": "true"}),
                f"register htmx {key}",
            )
    # Deletion reason, shown on the history and deleted-records pages.
    episode_id = records["BRD"]["episode_id"]
    client.post(f"/episodes/{episode_id}/delete", data={"reason": XSS, "confirm": "yes"})
    for path in (f"/episodes/{episode_id}/history", "/episodes/deleted", "/audit/"):
        _no_raw_payload(client.get(path), path)
    # An import with the payload in a cell and in the file name.
    csv = "nhs_number,date_of_birth,sex,postcode\n" + f"{nhs_number(9)},1950-01-01,{XSS},{XSS}\n"
    response = client.post(
        "/records/import",
        data={"file": (io.BytesIO(csv.encode()), f"{XSS}.csv")},
        content_type="multipart/form-data",
    )
    _no_raw_payload(response, "import")
    _no_raw_payload(client.get("/records/"), "imports page")
    db.session.remove()
    assert db.session.query(Patient).filter_by(nhs_number=nhs_number(66)).count() == 0
    assert db.session.query(Episode).count() == 2


def test_nul_characters_are_refused_not_a_server_error(client, db, world, make_user):
    """Found by the fuzzer on PostgreSQL: a NUL in a posted field reached the database (500)."""
    mine, _, records = world
    sign_in(client, make_user(role="lead", services=[mine]))
    before = without(figures(db), "audit_events")
    episode_id = records["BRD"]["episode_id"]
    form = {"submission_id": "\x00", "admitted": "Yes"}
    for path in (f"/episodes/{episode_id}/stages/identification", "/patients/new"):
        response = client.post(path, data=form)
        assert response.status_code == 400, path
    assert client.get("/patients/find", query_string={"nhs_number": "94\x0034"}).status_code == 400
    response = client.post(
        f"/episodes/{episode_id}/stages/identification",
        data={"admitted": "Yes"},
        headers={"Idempotency-Key": "a\x00b"},
    )
    assert response.status_code == 400
    assert without(figures(db), "audit_events") == before
