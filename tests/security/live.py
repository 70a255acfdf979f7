"""A real portal in a subprocess on 127.0.0.1 (werkzeug, threaded, as in the browser tests) on the
suite's test database, and a plain HTTP client for it: the tests that race requests against each
other need a real server, whose threads (or processes) answer at the same moment."""

from __future__ import annotations

import http.cookiejar
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
    """One browser: its own cookies, no redirects followed, the CSRF token sent with each POST."""

    def __init__(self, jar: http.cookiejar.CookieJar | None = None):
        self.jar = jar or http.cookiejar.CookieJar()
        self._opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.jar), _NoRedirect()
        )

    def request(self, url: str, data: dict | None = None) -> Answer:
        body = None
        if data is not None:
            token = json.loads(self.request(_origin(url) + "/csrf-token").body)["csrf_token"]
            body = urllib.parse.urlencode({**data, "csrf_token": token}).encode()
        try:
            with self._opener.open(urllib.request.Request(url, data=body), timeout=60) as answer:
                return Answer(
                    answer.status, answer.headers.get("Location", ""), answer.read().decode()
                )
        except urllib.error.HTTPError as error:
            return Answer(error.code, error.headers.get("Location", ""), error.read().decode())


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
    server.start(**env)
    return server
