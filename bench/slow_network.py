"""An episode page on a slow ward network (issue 22), in Debian's Chromium.

Chromium's own network emulation (DevTools protocol: 400 kbit/s each way, 400 ms latency), the
service worker blocked so that only HTTP caching counts:

- first visit: an empty cache, signed in, opening an episode page: bytes over the wire and the
  time to DOMContentLoaded (usable: deferred scripts have run) and to the load event;
- repeat visit: the same browser opening the episode page again (as by following a link): how
  many static files went to the network, and the same times.

The portal runs in this process (werkzeug, threaded) on a temporary SQLite database with one
service, one nurse and one patient with one episode. Prints the figures; docs/benchmarks.md
records them. Goals: first visit under 150 KB and 4 s; repeat visit fetches no static file and is
usable under 1 s.

    .venv/bin/python bench/slow_network.py [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CHROMIUM = "/usr/bin/chromium"
PASSWORD = "slow-ward-network-bench-7"
KBIT = 400
LATENCY_MS = 400


def start_portal(workdir: Path) -> tuple[str, int]:
    """The portal on a free port with one episode; returns (base URL, episode id)."""
    os.environ["DATABASE_URL"] = "sqlite:///" + str(workdir / "portal.db")
    os.environ["SECRET_KEY"] = "bench-slow-network-secret-key-0123456789"
    os.environ["PORTAL_INSTANCE_PATH"] = str(workdir / "instance")
    from flask_migrate import upgrade
    from werkzeug.serving import make_server

    from portal import clock, create_app
    from portal.accounts.users import hash_password
    from portal.extensions import db
    from portal.models import Episode, Patient, Service, User

    app = create_app()
    with app.app_context():
        upgrade()
        service = Service(
            code="BRD",
            name="Bench Fracture Liaison Service",
            nation="England",
            expected_caseload=1200,
            active=True,
            data_version=0,
        )
        db.session.add(service)
        db.session.flush()
        user = User(
            email="nurse@nhs.test",
            display_name="Nurse Bench",
            role="clinician",
            active=True,
            password_hash=hash_password(PASSWORD),
            session_version=1,
        )
        user.services = [service]
        db.session.add(user)
        fracture = clock.today() - timedelta(days=100)
        patient = Patient(
            service_id=service.id,
            nhs_number="9995908301",
            date_of_birth=date(1944, 3, 2),
            sex="Female",
            given_name="Zoë",
            family_name="Brontë",
        )
        db.session.add(patient)
        db.session.flush()
        episode = Episode(
            service_id=service.id,
            patient_id=patient.id,
            fracture_date=fracture,
            fracture_sites="Wrist",
            identification_date=fracture,
            admitted="No",
            fracture_type="Clinical",
        )
        db.session.add(episode)
        db.session.commit()
        episode_id = episode.id
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_port}", episode_id


class Wire:
    """What crossed the emulated network, from the DevTools protocol's events."""

    def __init__(self, cdp):
        self.reset()
        cdp.on("Network.requestWillBeSent", self._sent)
        cdp.on("Network.requestServedFromCache", self._from_cache)
        cdp.on("Network.responseReceived", self._received)
        cdp.on("Network.loadingFinished", self._finished)

    def reset(self) -> None:
        self.bytes = 0
        self.static: set[str] = set()
        self.cached: set[str] = set()

    def _sent(self, event) -> None:
        if "/static/" in event["request"]["url"]:
            self.static.add(event["requestId"])

    def _from_cache(self, event) -> None:
        self.cached.add(event["requestId"])

    def _received(self, event) -> None:
        response = event["response"]
        if response.get("fromDiskCache") or response.get("fromMemoryCache"):
            self.cached.add(event["requestId"])

    def _finished(self, event) -> None:
        self.bytes += int(event.get("encodedDataLength", 0))

    @property
    def static_from_network(self) -> int:
        return len(self.static - self.cached)


def visit(page, wire: Wire, url: str) -> dict:
    wire.reset()
    start = time.perf_counter()
    page.goto(url, wait_until="load")
    load = time.perf_counter() - start
    page.wait_for_timeout(500)  # late requests (the offline script's) are counted too
    timing = page.evaluate(
        """() => { const n = performance.getEntriesByType('navigation')[0];
                   return {dcl: n.domContentLoadedEventEnd, load: n.loadEventEnd}; }"""
    )
    return {
        "bytes": wire.bytes,
        "static_from_network": wire.static_from_network,
        "usable_s": timing["dcl"] / 1000,
        "load_s": timing["load"] / 1000 if timing["load"] else load,
    }


def run_once(browser, base: str, episode_id: int) -> tuple[dict, dict]:
    # Signed in on a separate context, so the measured one starts with an empty cache.
    signing = browser.new_context(base_url=base, service_workers="block")
    page = signing.new_page()
    page.goto("/auth/sign-in")
    page.fill("#email", "nurse@nhs.test")
    page.fill("#password", PASSWORD)
    with page.expect_navigation():
        page.click("main form button[type=submit]")
    state = signing.storage_state()
    signing.close()

    context = browser.new_context(base_url=base, service_workers="block", storage_state=state)
    page = context.new_page()
    cdp = context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send(
        "Network.emulateNetworkConditions",
        {
            "offline": False,
            "latency": LATENCY_MS,
            "downloadThroughput": KBIT * 1000 / 8,
            "uploadThroughput": KBIT * 1000 / 8,
        },
    )
    wire = Wire(cdp)
    url = f"{base}/episodes/{episode_id}"
    first = visit(page, wire, url)
    repeat = visit(page, wire, url)
    context.close()
    return first, repeat


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        base, episode_id = start_portal(Path(tmp))
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            results = [run_once(browser, base, episode_id) for _ in range(args.runs)]
            browser.close()
    print(f"Episode page at {KBIT} kbit/s, {LATENCY_MS} ms latency, service worker blocked")
    print(f"({args.runs} runs, median; Chromium {CHROMIUM})")
    for label, index in (("first visit", 0), ("repeat visit", 1)):
        runs = [r[index] for r in results]
        kb = statistics.median(r["bytes"] for r in runs) / 1024
        usable = statistics.median(r["usable_s"] for r in runs)
        load = statistics.median(r["load_s"] for r in runs)
        fetched = max(r["static_from_network"] for r in runs)
        print(
            f"  {label:12} {kb:7.1f} KB over the wire, usable {usable:.2f} s, "
            f"loaded {load:.2f} s, static files from the network: {fetched}"
        )


if __name__ == "__main__":
    main()
