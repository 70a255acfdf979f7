"""The server's part of offline-tolerant forms: the device key, the waiting and offline pages, the
service worker script and the CSRF refusal the offline script can act on (spec/offline.md)."""

from __future__ import annotations

import base64

from sqlalchemy import func, select

from portal.audit.actor import Actor
from tests.conftest import sign_in as _sign_in


def sign_in(client, user):
    # The app fixture keeps one application context for the whole test, so flask.g (where
    # Flask-WTF caches the token of the request) outlives each request; a new session needs it gone.
    from flask import g

    g.pop("csrf_token", None)
    response = _sign_in(client, user)
    g.pop("csrf_token", None)
    return response


def _key(response) -> bytes:
    body = response.get_json()
    text = body["key"]
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def test_device_key_is_the_signed_in_users_own_and_never_cached(client, make_service, make_user):
    service = make_service()
    first = make_user(services=[service])
    second = make_user(services=[service])

    sign_in(client, first)
    response = client.get("/device-key")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert response.get_json()["user"] == first.id
    assert response.get_json()["generation"] == 0
    first_key = _key(response)
    assert len(first_key) == 32
    # The same key after signing out and in again: what waits on the device stays readable.
    assert client.post("/auth/sign-out").status_code == 302
    sign_in(client, first)
    assert _key(client.get("/device-key")) == first_key

    assert client.post("/auth/sign-out").status_code == 302
    sign_in(client, second)
    second_response = client.get("/device-key")
    assert second_response.get_json()["user"] == second.id
    assert _key(second_response) != first_key


def test_device_key_needs_sign_in_and_answers_401_to_scripts(client):
    response = client.get("/device-key", headers={"Accept": "application/json"})
    assert response.status_code == 401
    assert response.get_json()["error"] == "signed_out"
    page = client.get("/device-key")
    assert page.status_code == 302
    assert "/auth/sign-in" in page.headers["Location"]


def test_rotating_the_device_key_changes_it_and_is_audited(
    app, db, client, make_service, make_user
):
    from portal.models import AuditEvent
    from portal.offline import device_keys

    user = make_user(services=[make_service()])
    before = device_keys.device_key(user, app.secret_key)
    assert device_keys.rotate_device_key(Actor.command_line(), user, "laptop lost on ward 7") == 1
    db.session.commit()
    after = device_keys.device_key(user, app.secret_key)
    assert after.generation == 1
    assert after.key != before.key
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "device_key_rotated"))
    assert event.entity_type == "user" and event.entity_id == user.id
    assert event.changes == {"device_key_generation": [0, 1]}
    assert event.detail == "laptop lost on ward 7"

    sign_in(client, user)
    assert client.get("/device-key").get_json()["generation"] == 1
    assert (
        db.session.scalar(
            select(func.count(AuditEvent.id)).where(AuditEvent.action == "device_key_rotated")
        )
        == 1
    )


def test_rotate_device_key_command(app, db, runner, make_service, make_user):
    from portal.offline import device_keys

    user = make_user(services=[make_service()])
    result = runner.invoke(
        args=["users", "rotate-device-key", user.email.upper(), "--reason", "stolen"]
    )
    assert result.exit_code == 0, result.output
    assert "generation 1" in result.output
    db.session.expire_all()
    assert device_keys.key_generation(user) == 1
    missing = runner.invoke(args=["users", "rotate-device-key", "nobody@nhs.test"])
    assert missing.exit_code == 1
    assert "no user" in missing.output + (missing.stderr if missing.stderr_bytes else "")


def test_waiting_page_is_a_shell_behind_sign_in(client, make_service, make_user):
    assert client.get("/waiting").status_code == 302
    sign_in(client, make_user(services=[make_service()]))
    response = client.get("/waiting")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "Waiting on this device" in html
    assert "data-offline-list" in html
    assert response.headers["Cache-Control"] == "no-store"


def test_offline_page_is_public_and_names_no_one(client, make_service, make_user):
    response = client.get("/offline")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "No connection to the server" in html
    assert "data-offline-list" in html
    assert 'name="portal-user"' not in html


def test_service_worker_is_public_at_the_root_with_versioned_caches(client, app):
    response = client.get("/sw.js")
    assert response.status_code == 200
    assert response.mimetype == "text/javascript"
    assert response.headers["Cache-Control"] == "no-cache"
    body = response.get_data(as_text=True)
    assert body.startswith("const PORTAL_SW = ")
    settings = __import__("json").loads(body.split("\n", 1)[0][len("const PORTAL_SW = ") : -1])
    assert len(settings["version"]) == 16
    assert any(
        url.startswith("/static/dist/vendor/offline.") for url in settings["assets"]
    )  # fingerprinted by scripts/build-assets.mjs
    assert not [url for url in settings["assets"] if url.startswith("/static/js/offline/")]
    assert "/static/js/sw.js" not in settings["assets"]
    assert settings["offlinePage"] == "/offline"
    # Only blank forms: no address with an id in it, so never a page of a patient.
    assert all(
        "<" not in url and not any(ch.isdigit() for ch in url) for url in settings["blankForms"]
    )
    assert client.get("/sw.js").get_data(as_text=True) == body


def test_expired_csrf_token_answers_json_to_scripts(client, make_service, make_user):
    sign_in(client, make_user(services=[make_service()]))
    response = client.post(
        "/service",
        data={"service_id": "1", "csrf_token": "stale"},
        headers={"HX-Request": "true", "X-CSRFToken": "stale"},
        csrf=False,
    )
    assert response.status_code == 400
    assert response.get_json()["error"] == "csrf"
    page = client.post("/service", data={"service_id": "1"}, csrf=False)
    assert page.status_code == 400
    assert "text/html" in page.content_type


def test_htmx_request_after_the_session_ended_gets_401_not_a_redirect(
    app, client, make_service, make_user
):
    from datetime import timedelta

    sign_in(client, make_user(services=[make_service()]))
    token = client.csrf_token()
    app.config["IDLE_TIMEOUT"] = timedelta(seconds=0)
    response = client.post(
        "/patients/new",
        data={"csrf_token": token, "submission_id": "5a1e0b5e-0000-4000-8000-000000000001"},
        headers={"HX-Request": "true", "X-CSRFToken": token},
        csrf=False,
    )
    assert response.status_code == 401
    assert "Location" not in response.headers
    assert response.get_json() == {"error": "signed_out", "sign_in": "/auth/sign-in"}
