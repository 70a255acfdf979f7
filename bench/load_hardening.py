"""Load test: simulated FLS nurses against gunicorn on 127.0.0.1 with PostgreSQL or SQLite.

    python bench/load_hardening.py [--database postgresql|sqlite] [--nurses 50] [--seconds 60]
        [--think 2] [--workers 4] [--threads 8]

A fresh database (PostgreSQL: on TEST_POSTGRES_URL's server; SQLite: a file in a temporary
folder, served by sync workers as the README advises) is migrated and seeded with one service,
the nurses and 20 episodes per nurse. gunicorn serves wsgi:app behind PORTAL_TRUST_PROXY=1, and
each nurse comes from their own X-Forwarded-For address, as behind the hospital's proxy. Every
nurse signs in before the timed part. Then, for `--seconds`, each one in turn opens the worklists,
saves the identification stage of one of their episodes with a fresh submission id (htmx, CSRF
header), and opens the KPI page. Prints requests per second, p50/p95/p99 per kind of request, and
the errors. Afterwards it checks that the saved stages (episode versions) equal the successful
saves and the `update` events of the audit trail. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import html
import http.client
import os
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from datetime import date, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PASSWORD = "load-test-passphrase-42"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def create_database(backend: str) -> tuple[str, str, str]:
    """(admin URL, database name, URL) of a fresh database of `backend`."""
    from sqlalchemy import create_engine, text

    if backend == "sqlite":
        folder = Path(tempfile.mkdtemp(prefix="fls-load-"))
        return "", str(folder), f"sqlite:///{folder / 'portal.db'}"

    admin_url = os.environ.get(
        "TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    )
    name = f"fls_load_{uuid.uuid4().hex[:8]}"
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return admin_url, name, admin_url.rsplit("/", 1)[0] + "/" + name


def drop_database(admin_url: str, name: str) -> None:
    from sqlalchemy import create_engine, text

    if not admin_url:  # SQLite: the temporary folder
        shutil.rmtree(name, ignore_errors=True)
        return

    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


def seed(url: str, nurses: int, episodes_each: int) -> list[tuple[str, list[int]]]:
    """One service, `nurses` clinicians and their episodes; returns (email, episode ids)."""
    from argon2 import PasswordHasher
    from flask_migrate import upgrade

    from portal import create_app
    from portal.extensions import db
    from portal.models import Episode, Patient, Service, User

    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "SECRET_KEY": "load"})
    out = []
    with app.app_context():
        upgrade()
        service = Service(
            code="LDT",
            name="Load Test FLS",
            nation="England",
            expected_caseload=5000,
            active=True,
            data_version=0,
        )
        db.session.add(service)
        db.session.flush()
        hashed = PasswordHasher().hash(PASSWORD)
        today = datetime.now(ZoneInfo("Europe/London")).date()
        serial = 0
        for n in range(nurses):
            user = User(
                email=f"nurse{n:03d}@load.test",
                display_name=f"Nurse {n}",
                role="clinician",
                active=True,
                password_hash=hashed,
                session_version=1,
            )
            user.services = [service]
            db.session.add(user)
            ids = []
            for _ in range(episodes_each):
                serial += 1
                patient = Patient(
                    service_id=service.id,
                    nhs_number=_nhs_number(serial),
                    date_of_birth=date(1935 + serial % 40, 1 + serial % 12, 1 + serial % 28),
                    sex="Female" if serial % 3 else "Male",
                )
                db.session.add(patient)
                db.session.flush()
                fracture = today - timedelta(days=20 + serial % 300)
                episode = Episode(
                    service_id=service.id,
                    patient_id=patient.id,
                    fracture_date=fracture,
                    identification_date=fracture + timedelta(days=1),
                    admitted="Yes",
                    fracture_sites="Wrist",
                )
                db.session.add(episode)
                db.session.flush()
                ids.append(episode.id)
            out.append((user.email, ids))
        db.session.commit()
        if db.engine.dialect.name == "postgresql":
            # The planner's statistics, as autovacuum keeps them on a server in use: without them
            # a fresh table is estimated at one row and joined by nested loops.
            # Committed: a connection's implicit transaction is rolled back when it closes, and
            # ANALYZE's statistics with it (they were, until 2026-12-03).
            with db.engine.connect() as connection:
                connection.exec_driver_sql("ANALYZE")
                connection.commit()
        db.engine.dispose()
    return out


def _nhs_number(seed: int) -> str:
    n = 400000000 + seed * 7
    while True:
        nine = f"{n:09d}"[-9:]
        check = 11 - sum(int(d) * w for d, w in zip(nine, range(10, 1, -1), strict=True)) % 11
        check = 0 if check == 11 else check
        if check != 10 and len(set(nine)) > 1:
            return nine + str(check)
        n += 1


class Nurse:
    """One simulated nurse: a keep-alive connection, the session cookie and the CSRF token."""

    def __init__(self, port: int, email: str, episodes: list[int], address: str):
        self.port = port
        self.email = email
        self.episodes = episodes
        self.address = address
        self.cookie = ""
        self.csrf = ""
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.forms: dict[int, dict[str, list[str]]] = {}
        self.saves_ok = 0
        self.reconnects = 0
        self.latencies: dict[str, list[float]] = defaultdict(list)
        self.errors: list[str] = []

    def request(self, method, path, body=None, headers=None, kind=None):
        headers = {"X-Forwarded-For": self.address, **(headers or {})}
        if self.cookie:
            headers["Cookie"] = self.cookie
        for attempt in (1, 2):
            started = time.perf_counter()
            try:
                self.connection.request(method, path, body=body, headers=headers)
                response = self.connection.getresponse()
                data = response.read()
                break
            except (OSError, http.client.HTTPException) as error:
                self.connection.close()
                self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                # The server closed an idle keep-alive connection as this request went out: a
                # browser sends it again on a new connection (a save carries its submission id,
                # so a repeat cannot save twice). Anything else, or a second failure, is an error.
                stale = isinstance(
                    error, http.client.RemoteDisconnected | ConnectionResetError | BrokenPipeError
                )
                if attempt == 2 or not stale:
                    self.errors.append(f"{method} {path}: {error!r}")
                    return None, b""
                self.reconnects += 1
        elapsed = time.perf_counter() - started
        for value in response.headers.get_all("Set-Cookie") or []:
            if value.startswith("session="):
                self.cookie = value.split(";", 1)[0]
        if kind:
            self.latencies[kind].append(elapsed)
            if response.status >= 400:
                self.errors.append(f"{method} {path}: {response.status}")
        return response, data

    def sign_in(self) -> None:
        _, page = self.request("GET", "/auth/sign-in")
        token = re.search(rb'name="csrf_token" type="hidden" value="([^"]+)"', page) or re.search(
            rb'name="csrf-token" content="([^"]+)"', page
        )
        body = urlencode(
            {"csrf_token": token.group(1).decode(), "email": self.email, "password": PASSWORD}
        )
        response, _ = self.request(
            "POST",
            "/auth/sign-in",
            body,
            {"Content-Type": "application/x-www-form-urlencoded"},
        )
        if response is None or response.status != 302:
            raise RuntimeError(f"{self.email} could not sign in: {response and response.status}")
        _, home = self.request("GET", "/")
        self.csrf = re.search(rb'name="csrf-token" content="([^"]+)"', home).group(1).decode()
        for episode_id in self.episodes:
            _, section = self.request(
                "GET",
                f"/episodes/{episode_id}/stages/identification",
                headers={"HX-Request": "true"},
            )
            self.forms[episode_id] = _fields(section.decode())

    def save(self, episode_id: int) -> None:
        fields = self.forms[episode_id]
        fields["admitted"] = ["No" if fields.get("admitted", ["Yes"])[0] == "Yes" else "Yes"]
        fields["submission_id"] = [str(uuid.uuid4())]
        body = urlencode([(k, v) for k, values in fields.items() for v in values])
        response, data = self.request(
            "POST",
            f"/episodes/{episode_id}/stages/identification",
            body,
            {
                "Content-Type": "application/x-www-form-urlencoded",
                "HX-Request": "true",
                "X-CSRFToken": self.csrf,
            },
            kind="save stage",
        )
        if response is not None and response.status == 200:
            self.saves_ok += 1
            self.forms[episode_id] = _fields(data.decode())

    def work(self, until: float, think: float) -> None:
        turn = 0
        rng = random.Random(self.email)
        if think:
            # Nurses do not all press a link in the same millisecond: each starts somewhere in the
            # first think time. (Started together, the first fifty worklist requests queued behind
            # one another on four workers: that burst was the worklists' whole p95 tail.)
            time.sleep(rng.uniform(0, 2 * think))
        while time.monotonic() < until:
            episode_id = self.episodes[turn % len(self.episodes)]
            for step in ("worklists", "save", "kpis"):
                if step == "worklists":
                    self.request("GET", "/worklists", kind="worklists")
                elif step == "save":
                    self.save(episode_id)
                else:
                    self.request("GET", "/kpis/", kind="KPI page")
                if think:
                    # Reading the page and typing: uniform around the mean.
                    time.sleep(rng.uniform(0, 2 * think))
            turn += 1


def _fields(section: str) -> dict[str, list[str]]:
    form = section[section.index("<form") : section.index("</form>")]
    fields: dict[str, list[str]] = defaultdict(list)
    for tag in re.findall(r"<input[^>]*>", form):
        name = re.search(r'name="([^"]+)"', tag)
        if not name:
            continue
        kind = re.search(r'type="([^"]+)"', tag)
        if kind and kind.group(1) in ("radio", "checkbox") and " checked" not in tag:
            continue
        value = re.search(r'value="([^"]*)"', tag)
        fields[name.group(1)].append(html.unescape(value.group(1) if value else ""))
    for select in re.finditer(r'<select[^>]*name="([^"]+)"[^>]*>(.*?)</select>', form, re.S):
        chosen = re.search(r'<option value="([^"]*)"[^>]*selected', select.group(2))
        fields[select.group(1)].append(chosen.group(1) if chosen else "")
    return dict(fields)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))] * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", choices=("postgresql", "sqlite"), default="postgresql")
    parser.add_argument("--nurses", type=int, default=50)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--episodes", type=int, default=20, help="episodes per nurse")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument(
        "--think",
        type=float,
        default=0.0,
        help="mean seconds a nurse spends on a page before the next request (0: none)",
    )
    args = parser.parse_args()

    admin_url, name, url = create_database(args.database)
    # SQLite takes one writer at a time: sync workers, as the README's production notes say.
    worker_class = "sync" if args.database == "sqlite" else "gthread"
    server = None
    try:
        print(f"seeding {args.nurses} nurses x {args.episodes} episodes ...", file=sys.stderr)
        nurses_data = seed(url, args.nurses, args.episodes)
        port = free_port()
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "SECRET_KEY": "load-" + uuid.uuid4().hex,
            "PORTAL_TRUST_PROXY": "1",
            "PORTAL_INSTANCE_PATH": tempfile.mkdtemp(prefix="fls-load-instance-"),
        }
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "-w",
                str(args.workers),
                "-k",
                worker_class,
                "--threads",
                str(args.threads if worker_class == "gthread" else 1),
                "-b",
                f"127.0.0.1:{port}",
                "--log-level",
                "warning",
                "wsgi:app",
            ],
            cwd=ROOT,
            env=env,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                c.request("GET", "/health")
                if c.getresponse().status == 200:
                    break
            except OSError:
                time.sleep(0.2)
        nurses = [
            Nurse(port, email, ids, f"10.{n // 250}.{n % 250}.{1 + n % 200}")
            for n, (email, ids) in enumerate(nurses_data)
        ]
        print("signing in ...", file=sys.stderr)
        for nurse in nurses:
            nurse.sign_in()
        print(f"running {args.seconds}s ...", file=sys.stderr)
        started = time.monotonic()
        until = started + args.seconds
        threads = [threading.Thread(target=n.work, args=(until, args.think)) for n in nurses]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - started
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)

    kinds: dict[str, list[float]] = defaultdict(list)
    for nurse in nurses:
        for kind, values in nurse.latencies.items():
            kinds[kind].extend(values)
    everything = [v for values in kinds.values() for v in values]
    errors = [e for n in nurses for e in n.errors]
    reconnects = sum(n.reconnects for n in nurses)
    print(
        f"{args.database}: nurses {args.nurses}, {args.seconds}s, think {args.think}s, "
        f"gunicorn {args.workers} {worker_class} workers"
        + (f" x {args.threads} threads" if worker_class == "gthread" else "")
    )
    print(
        f"requests {len(everything)}, {len(everything) / elapsed:.1f} per second, "
        f"errors {len(errors)}, resent on a closed keep-alive connection {reconnects}"
    )
    print(f"{'request':<12} {'count':>6} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'mean ms':>8}")
    for kind, values in sorted(kinds.items()) + [("all", everything)]:
        print(
            f"{kind:<12} {len(values):>6} {percentile(values, 50):>8.1f} "
            f"{percentile(values, 95):>8.1f} {percentile(values, 99):>8.1f} "
            f"{statistics.mean(values) * 1000:>8.1f}"
        )
    for error in errors[:10]:
        print("error:", error)

    from sqlalchemy import create_engine, text

    saves_ok = sum(n.saves_ok for n in nurses)
    engine = create_engine(url)
    with engine.connect() as conn:
        versions = conn.scalar(text("SELECT COALESCE(SUM(version - 1), 0) FROM episodes"))
        updates = conn.scalar(
            text(
                "SELECT COUNT(*) FROM audit_events WHERE action = 'update' AND entity_type = 'episode'"
            )
        )
    engine.dispose()
    drop_database(admin_url, name)
    consistent = saves_ok == versions == updates
    print(
        f"successful saves {saves_ok}, saved stages (episode versions) {versions}, "
        f"audit update events {updates}: {'consistent' if consistent else 'MISMATCH'}"
    )
    return 0 if consistent and not errors else 1


if __name__ == "__main__":
    sys.exit(main())
