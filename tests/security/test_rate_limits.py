"""Per-address rate limits (security.md) on sign-in, the second-factor step and uploads; with
REDIS_URL the limit holds across portal processes sharing the Redis server."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _wrong(n: int) -> dict[str, str]:
    """A wrong sign-in with its own email: the slow-down per (email, address) has its own tests
    (test_auth.py); these count only the per-address limit."""
    return {"email": f"nobody-{n}@nhs.test", "password": "not-the-password-1"}


def _sign_in_attempts(client, count: int, address: str) -> list[int]:
    return [
        client.post(
            "/auth/sign-in", data=_wrong(n), environ_base={"REMOTE_ADDR": address}
        ).status_code
        for n in range(count)
    ]


def test_sign_in_is_limited_per_address(limited_app):
    client = limited_app().test_client()
    statuses = _sign_in_attempts(client, 21, "10.1.1.1")
    assert statuses[:20] == [200] * 20
    assert statuses[20] == 429
    # Another address is unaffected; GETs of the page are not limited.
    assert _sign_in_attempts(client, 1, "10.1.1.2") == [200]
    assert client.get("/auth/sign-in", environ_base={"REMOTE_ADDR": "10.1.1.1"}).status_code == 200


def test_the_portal_declares_its_limits_on_routes_only(limited_app):
    """Sign-in, the second factor, confirming it is you and uploads carry limits; nothing limits
    the whole app."""
    from portal.extensions import limiter

    app = limited_app()
    limited = {
        endpoint
        for endpoint, view in app.view_functions.items()
        if getattr(view, "__wrapper-limiter-instance", None) is not None  # limiter.limit(...)
    }
    assert limited == {
        "auth.sign_in",
        "auth.second_factor",
        "auth.confirm_identity",
        "records.upload",
    }
    assert limiter.limit_manager.application_limits == []
    assert limiter.limit_manager.default_limits == []


def test_a_limit_declared_on_any_route_is_counted(limited_app):
    """Flask-Limiter is used as documented: a limit on a route of any blueprint holds."""
    from flask import Blueprint

    from portal.extensions import limiter

    extra = Blueprint("extra", __name__)

    @extra.get("/extra/limited")
    @limiter.limit("2 per minute")
    def limited():
        return "ok"

    app = limited_app()
    app.register_blueprint(extra)
    # Public for this test only, so the limit (not sign-in) decides the answer.
    from portal import security

    security.PUBLIC_ENDPOINTS.add("extra.limited")
    try:
        client = app.test_client()
        assert [client.get("/extra/limited").status_code for _ in range(3)] == [200, 200, 429]
    finally:
        security.PUBLIC_ENDPOINTS.discard("extra.limited")


def test_limits_are_off_in_the_default_suite(client):
    assert set(_sign_in_attempts(client, 25, "10.1.1.3")) == {200}


def test_uploads_are_limited_per_address(limited_app, make_service, make_user):
    from tests.conftest import sign_in

    app = limited_app(UPLOAD_RATE_LIMIT="3 per minute")
    nurse = make_user(role="clinician", services=[make_service()])

    def upload(client, address):
        return client.post(
            "/records/import",
            data={"file": (io.BytesIO(b"nhs_number\n"), "records.csv")},
            content_type="multipart/form-data",
            environ_base={"REMOTE_ADDR": address},
        )

    first, second = app.test_client(), app.test_client()
    sign_in(first, nurse)
    sign_in(second, nurse)
    answers = [upload(first, "10.2.2.2") for _ in range(4)]
    assert [a.status_code for a in answers[:3]] != [429] * 3
    assert answers[3].status_code == 429
    assert "Too many uploads from this address" in answers[3].get_data(as_text=True)
    assert upload(second, "10.2.2.3").status_code != 429


def _redis_or_skip() -> None:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.exceptions.ConnectionError as error:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip(f"REDIS NOT AVAILABLE at {REDIS_URL}: {error}")


_OTHER_INSTANCE = textwrap.dedent(
    """
    import sys
    from portal import create_app
    from tests.conftest import CSRFClient, _test_config
    from pathlib import Path

    database_url, storage, prefix, count = sys.argv[1:5]
    config = _test_config(database_url, Path(sys.argv[5]))
    config.update(RATELIMIT_ENABLED=True, RATELIMIT_STORAGE_URI=storage, RATELIMIT_KEY_PREFIX=prefix)
    app = create_app(config)
    app.test_client_class = CSRFClient
    client = app.test_client()
    codes = [
        client.post(
            "/auth/sign-in",
            data={"email": f"other-{n}@nhs.test", "password": "not-the-password-1"},
            environ_base={"REMOTE_ADDR": "10.3.3.3"},
        ).status_code
        for n in range(int(count))
    ]
    print(",".join(map(str, codes)))
    """
)


def _other_instance(
    database_url: str, storage: str, prefix: str, count: int, tmp_path
) -> list[int]:
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            _OTHER_INSTANCE,
            database_url,
            storage,
            prefix,
            str(count),
            str(tmp_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return [int(code) for code in result.stdout.strip().split(",")]


def test_limit_holds_across_two_instances_sharing_redis(app, limited_app, tmp_path):
    _redis_or_skip()
    prefix = f"fls-test-{uuid.uuid4().hex[:8]}"
    database_url = app.config["SQLALCHEMY_DATABASE_URI"]
    # Another process (another gunicorn worker or machine) takes 15 of the 20 attempts...
    assert set(_other_instance(database_url, REDIS_URL, prefix, 15, tmp_path)) == {200}
    # ...so this instance has 5 left.
    here = limited_app(RATELIMIT_STORAGE_URI=REDIS_URL, RATELIMIT_KEY_PREFIX=prefix).test_client()
    statuses = _sign_in_attempts(here, 6, "10.3.3.3")
    assert statuses == [200] * 5 + [429]
    import redis

    connection = redis.Redis.from_url(REDIS_URL)
    for key in connection.scan_iter(f"{prefix}*"):
        connection.delete(key)
    connection.close()


def test_memory_storage_is_per_process(app, limited_app, tmp_path):
    """The control: without Redis each process counts alone (why production sets REDIS_URL)."""
    database_url = app.config["SQLALCHEMY_DATABASE_URI"]
    assert set(_other_instance(database_url, "memory://", "x", 15, tmp_path)) == {200}
    here = limited_app().test_client()
    assert set(_sign_in_attempts(here, 20, "10.3.3.3")) == {200}


def test_redis_url_selects_redis_storage(monkeypatch, tmp_path):
    from portal import config

    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/3")
    assert (
        config.from_environment(str(tmp_path))["RATELIMIT_STORAGE_URI"]
        == "redis://127.0.0.1:6379/3"
    )
    monkeypatch.delenv("REDIS_URL")
    assert config.from_environment(str(tmp_path))["RATELIMIT_STORAGE_URI"] == "memory://"
