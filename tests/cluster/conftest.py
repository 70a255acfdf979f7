"""Two portal instances behind HAProxy (deploy/cluster.py, as scripts/cluster runs them: the
gunicorn and HAProxy configuration files of deploy/) on a fresh PostgreSQL database and the Redis
at 127.0.0.1:6379, started once for these tests; and a plain HTTP browser that can send each
request to the balancer or to one instance.

Without HAProxy, PostgreSQL or Redis the tests skip with a loud reason, except with CI=true,
where they fail (.ci/run installs HAProxy from Debian's packages)."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass

import pytest

from deploy.cluster import Cluster, haproxy
from tests.security.databases import fresh_database

PASSWORD = "correct-horse-battery-9"
SERVICE = "BRD"
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _missing(what: str) -> None:
    message = f"CROSS-INSTANCE TESTS NOT RUN: {what}"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def _redis_answers() -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(REDIS_URL, socket_timeout=2).ping())
    except redis.RedisError:
        return False


@pytest.fixture(scope="session")
def cluster(tmp_path_factory):
    if haproxy() is None:
        _missing("HAProxy is not installed (as root: apt-get install -y haproxy)")
    if not _redis_answers():
        _missing(f"Redis does not answer at {REDIS_URL}")
    workdir = tmp_path_factory.mktemp("cluster")
    with fresh_database("postgresql", workdir) as url:
        portal = Cluster(
            database_url=url,
            redis_url=REDIS_URL,
            secret_key=secrets.token_hex(32),
            workdir=workdir,
        )
        with portal:
            _prepare(portal)
            yield portal
        shutil.rmtree(workdir / "instance", ignore_errors=True)


def _prepare(portal: Cluster) -> None:
    """One service and its staff, through the portal's own commands."""
    portal.flask(
        "services", "add", SERVICE, "--name", "Bradford FLS", "--nation", "England",
        "--expected-caseload", "400",
    )  # fmt: skip
    for email, role in STAFF.items():
        portal.flask(
            "users", "add", email, "--role", role, "--service", SERVICE,
            "--name", email.split("@")[0].capitalize(),
            stdin=PASSWORD + "\n",
        )  # fmt: skip


STAFF = {
    "nurse@cluster.test": "clinician",
    "second.nurse@cluster.test": "clinician",
    "lead@cluster.test": "clinician",
}


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: str

    @property
    def location(self) -> str:
        return self.headers.get("location", "")

    @property
    def instance(self) -> str:
        """Which instance answered, as the balancer says (deploy/haproxy.cfg)."""
        return self.headers.get("x-portal-instance", "")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


class Browser:
    """One browser: its cookies (kept by name for every port of 127.0.0.1, as a browser does for
    one site behind a balancer), its own address (X-Forwarded-For, believed by the instances as
    from the balancer), no redirects followed. Every request names where it goes: the balancer
    or an instance; a POST carries the CSRF token it is given."""

    def __init__(self) -> None:
        self.cookies: dict[str, str] = {}
        self.address = (
            f"10.{secrets.randbelow(250)}.{secrets.randbelow(250)}.{1 + secrets.randbelow(250)}"
        )
        self._opener = urllib.request.build_opener(_NoRedirect())

    def get(self, url: str, headers: dict[str, str] | None = None) -> Answer:
        return self._send(urllib.request.Request(url, headers=headers or {}))

    def post(
        self,
        url: str,
        data: dict | list | None = None,
        csrf: str | None = None,
        headers: dict[str, str] | None = None,
        files: dict[str, tuple[str, bytes]] | None = None,
    ) -> Answer:
        fields = list(data.items() if isinstance(data, dict) else (data or []))
        if csrf is not None:
            fields.append(("csrf_token", csrf))
        sent_headers = dict(headers or {})
        if files:
            body, sent_headers["Content-Type"] = _multipart(fields, files)
        else:
            body = urllib.parse.urlencode(fields).encode()
            sent_headers["Content-Type"] = "application/x-www-form-urlencoded"
        return self._send(urllib.request.Request(url, data=body, headers=sent_headers))

    def csrf_token(self, url: str) -> str:
        """The token a page of `url`'s origin carries (the meta tag of the home page)."""
        page = self.get(url + "/")
        match = re.search(r'name="csrf-token" content="([^"]+)"', page.body)
        assert match, f"no CSRF token on {url}/ ({page.status})"
        return match.group(1)

    def sign_in(self, url: str, email: str) -> Answer:
        page = self.get(url + "/auth/sign-in")
        token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page.body)
        assert token, page.body[:2000]
        answer = self.post(
            url + "/auth/sign-in", {"email": email, "password": PASSWORD}, csrf=token.group(1)
        )
        assert answer.status == 302 and answer.location.endswith("/"), (answer.status, answer.body)
        return answer

    def _send(self, request: urllib.request.Request) -> Answer:
        request.add_header("X-Forwarded-For", self.address)
        if self.cookies:
            request.add_header("Cookie", "; ".join(f"{k}={v}" for k, v in self.cookies.items()))
        try:
            with self._opener.open(request, timeout=60) as response:
                return self._answer(response.status, response.headers, response.read())
        except urllib.error.HTTPError as error:
            return self._answer(error.code, error.headers, error.read())

    def _answer(self, status: int, headers, body: bytes) -> Answer:
        for header in headers.get_all("Set-Cookie") or []:
            name, _, value = header.split(";", 1)[0].partition("=")
            if value and "max-age=0" not in header.lower():
                self.cookies[name.strip()] = value
            else:
                self.cookies.pop(name.strip(), None)
        return Answer(status, {k.lower(): v for k, v in headers.items()}, body.decode())


def _multipart(fields: list, files: dict[str, tuple[str, bytes]]) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = []
    for name, value in fields:
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        )
    for name, (filename, content) in files.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
            f'filename="{filename}"\r\nContent-Type: text/csv\r\n\r\n'.encode()
            + content
            + b"\r\n"
        )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"
