"""A real portal in a subprocess on 127.0.0.1 (werkzeug, threaded, as in the browser tests) on the
suite's test database, and a plain HTTP client for it: the tests that race requests against each
other need a real server, whose threads (or processes) answer at the same moment."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tests.browser.portal_process import PortalServer


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


@dataclass
class Answer:
    status: int
    location: str
    body: str


class Browser:
    """One browser: its own cookies, no redirects followed, the CSRF token sent with each POST.

    Cookies are kept by name for every server on 127.0.0.1 (as a browser does across ports), and
    the servers judge when they expire: the suite runs on a fixed day (tests/conftest.py) that
    may lie after the real expiry date the server sets, so http.cookiejar would drop them."""

    def __init__(self, address: str | None = None) -> None:
        self.cookies: dict[str, str] = {}
        # Where the request comes from, as a trusted proxy tells it (start_server's servers
        # believe one proxy): each browser may be its own address, for limits and throttling.
        self.address = address
        self._opener = urllib.request.build_opener(_NoRedirect())

    def request(self, url: str, data: dict | None = None) -> Answer:
        body = None
        if data is not None:
            token = json.loads(self.request(_origin(url) + "/csrf-token").body)["csrf_token"]
            body = urllib.parse.urlencode({**data, "csrf_token": token}).encode()
        sent = urllib.request.Request(url, data=body)
        if self.address:
            sent.add_header("X-Forwarded-For", self.address)
        if self.cookies:
            sent.add_header("Cookie", "; ".join(f"{k}={v}" for k, v in self.cookies.items()))
        try:
            with self._opener.open(sent, timeout=60) as answer:
                self._keep(answer.headers.get_all("Set-Cookie") or [])
                return Answer(
                    answer.status, answer.headers.get("Location", ""), answer.read().decode()
                )
        except urllib.error.HTTPError as error:
            self._keep(error.headers.get_all("Set-Cookie") or [])
            return Answer(error.code, error.headers.get("Location", ""), error.read().decode())

    def _keep(self, set_cookies: list[str]) -> None:
        for header in set_cookies:
            name, _, value = header.split(";", 1)[0].partition("=")
            if value and "max-age=0" not in header.lower():
                self.cookies[name.strip()] = value
            else:
                self.cookies.pop(name.strip(), None)


def _origin(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def at_the_same_moment(calls: list[Callable[[], Answer]]) -> list[Answer]:
    """Run every call in its own thread, all released together by a barrier."""
    barrier = threading.Barrier(len(calls))
    answers: list[Answer | None] = [None] * len(calls)

    def run(index: int) -> None:
        barrier.wait()
        answers[index] = calls[index]()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert all(a is not None for a in answers), "a request did not finish"
    return answers  # type: ignore[return-value]


def start_server(database_url: str, workdir: Path, **env: str) -> PortalServer:
    server = PortalServer(workdir, database_url)
    server.start(**{"PORTAL_TRUST_PROXY": "1", **env})
    return server
