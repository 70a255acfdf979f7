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
WRONG = {"email": "nobody@nhs.test", "password": "not-the-password-1"}


def _sign_in_attempts(client, count: int, address: str) -> list[int]:
    return [
        client.post("/auth/sign-in", data=WRONG, environ_base={"REMOTE_ADDR": address}).status_code
        for _ in range(count)
    ]


def test_sign_in_is_limited_per_address(limited_app):
    client = limited_app().test_client()
    statuses = _sign_in_attempts(client, 21, "10.1.1.1")
    assert statuses[:20] == [200] * 20
    assert statuses[20] == 429
    # Another address is unaffected; GETs of the page are not limited.
    assert _sign_in_attempts(client, 1, "10.1.1.2") == [200]
    assert client.get("/auth/sign-in", environ_base={"REMOTE_ADDR": "10.1.1.1"}).status_code == 200


def test_every_rate_limited_route_is_in_the_blueprint_the_limiter_checks(limited_app):
    """The limiter's check runs only for the auth blueprint (extensions.py): a limit set on a
    route anywhere else, or on the whole application, would never be counted."""
    from portal.extensions import RATE_LIMITED_BLUEPRINT, limiter

    app = limited_app()
    limited = {
        endpoint
        for endpoint, view in app.view_functions.items()
        if getattr(view, "__wrapper-limiter-instance", None) is not None  # limiter.limit(...)
    }
    assert limited == {"auth.sign_in", "auth.second_factor"}
    assert {endpoint.split(".")[0] for endpoint in limited} == {RATE_LIMITED_BLUEPRINT}
    assert limiter.limit_manager.application_limits == []
    assert limiter.limit_manager.default_limits == []


def test_the_limiters_hooks_run_only_in_the_rate_limited_blueprint(limited_app):
    """Flask-Limiter hooks every request; the portal moves its three hooks (the check, the
    headers, the release) to the blueprint where the limits are (extensions.confine_limiter)."""
    from portal.extensions import RATE_LIMITED_BLUEPRINT, _belongs_to_limiter

    app = limited_app()
    for hooks in (app.before_request_funcs, app.after_request_funcs, app.teardown_request_funcs):
        assert not [hook for hook in hooks.get(None, []) if _belongs_to_limiter(hook)]
        assert (
            len([hook for hook in hooks[RATE_LIMITED_BLUEPRINT] if _belongs_to_limiter(hook)]) == 1
        )


def test_a_request_elsewhere_skips_the_limiter_check(limited_app, monkeypatch):
    from portal.extensions import limiter

    checked = []
    monkeypatch.setattr(
        limiter.limit_manager, "resolve_limits", lambda *a: checked.append(a) or ([], [])
    )
    client = limited_app().test_client()
    client.get("/health")
    client.get("/benchmarks")
    assert checked == []
    client.get("/auth/sign-in")
    assert checked


def test_limits_are_off_in_the_default_suite(client):
    assert set(_sign_in_attempts(client, 25, "10.1.1.3")) == {200}


def test_uploads_are_limited_per_address_whatever_the_route(limited_app):
    client = limited_app(UPLOAD_RATE_LIMIT="3 per minute").test_client()

    def upload(address):
        return client.post(
            "/auth/sign-in",
            data={**WRONG, "file": (io.BytesIO(b"nhs_number\n"), "records.csv")},
            content_type="multipart/form-data",
            environ_base={"REMOTE_ADDR": address},
        ).status_code

    assert [upload("10.2.2.2") for _ in range(4)] == [200, 200, 200, 429]
    assert upload("10.2.2.3") == 200


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
    data = {"email": "nobody@nhs.test", "password": "not-the-password-1"}
    codes = [
        client.post("/auth/sign-in", data=data, environ_base={"REMOTE_ADDR": "10.3.3.3"}).status_code
        for _ in range(int(count))
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
