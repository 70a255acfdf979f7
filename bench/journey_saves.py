"""Stage-save throughput and latency against gunicorn on SQLite, next to a bare Flask insert.

    python bench/journey_saves.py [--clients 20] [--seconds 15] [--workers 4] [--threads 4]
        [--worker-class gthread|sync] [--rounds 1] [--floor]

Three servers run under gunicorn with the same worker settings (default 4 gthread processes x 4
threads; docs/bench-journey.md compares others), each on its own SQLite file in WAL mode with a
busy timeout:
two bare Flask apps whose POST inserts one row (through Flask-SQLAlchemy's ORM, the portal's own
stack minus everything the portal does; and through the sqlite3 module), and the portal
(`wsgi:app`). Then `--clients` concurrent clients (threads with keep-alive connections) post for
`--seconds` seconds against each server in turn, the ORM insert and the portal back to back
(`--rounds` times, for a shared machine whose speed changes from one minute to the next; the
ratio printed is then the median of the rounds'):
- bare: `POST /insert` (one INSERT and a commit);
- portal: each client signed in as its own clinician, saving the treatment stage of its own
  episode through the htmx endpoint, as the browser does (CSRF header, a fresh submission_id, the
  version read back from the previous answer), with an answer that changes each time so every
  save writes the episode, its audit event, its submission and the service's data version.
Prints, side by side, requests per second, p50/p99 latency, the server's CPU time per request
(gunicorn master and workers, from /proc), the load average, and the portal/bare ratios.
BENCH_PORTAL_ROOT=<checkout> measures another checkout of the portal (e.g. main) with this harness.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
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
from datetime import date, timedelta
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(os.environ.get("BENCH_PORTAL_ROOT") or Path(__file__).resolve().parent.parent)
sys.path.insert(0, str(ROOT))
PASSWORD = "bench-password-for-clinicians-1"

# Two bare Flask apps whose POST inserts one row: with the sqlite3 module, and with
# Flask-SQLAlchemy's ORM (the portal's own stack, minus everything the portal does).
BARE_SQLITE_APP = """
import sqlite3, threading
from flask import Flask, request
app = Flask(__name__)
_local = threading.local()
def conn():
    if not hasattr(_local, "db"):
        _local.db = sqlite3.connect(DB, timeout=15)
        _local.db.execute("PRAGMA journal_mode=WAL")
        _local.db.execute("PRAGMA synchronous=NORMAL")
    return _local.db
@app.post("/insert")
def insert():
    db = conn()
    db.execute("INSERT INTO rows (value) VALUES (?)", (request.form.get("value", ""),))
    db.commit()
    return "saved"
"""
BARE_ORM_APP = """
from flask import Flask, request
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
class Base(DeclarativeBase):
    pass
db = SQLAlchemy(model_class=Base)
class Row(Base):
    __tablename__ = "rows"
    id: Mapped[int] = mapped_column(primary_key=True)
    value: Mapped[str]
@event.listens_for(Engine, "connect")
def pragmas(connection, record):
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.execute("PRAGMA busy_timeout=15000")
app = Flask(__name__)
app.config["SQLALCHEMY_DATABASE_URI"] = "sqlite:///" + DB
db.init_app(app)
@app.post("/insert")
def insert():
    db.session.add(Row(value=request.form.get("value", "")))
    db.session.commit()
    return "saved"
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(port: int, path: str, timeout: float = 30) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", path)
            c.getresponse().read()
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"server on port {port} did not start")


def gunicorn(app: str, port: int, env: dict, args, cwd: Path) -> subprocess.Popen:
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        app,
        "-b",
        f"127.0.0.1:{port}",
        "-w",
        str(args.workers),
        "-k",
        args.worker_class,
        "--threads",
        str(args.threads),
        "--keep-alive",
        "30",
        "--log-level",
        "warning",
    ]
    return subprocess.Popen(command, env={**os.environ, **env}, cwd=cwd)


def server_cpu(server: subprocess.Popen) -> float:
    """CPU seconds (user + system) used so far by a gunicorn master and its workers (Linux /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    pids = [server.pid]
    children = Path(f"/proc/{server.pid}/task/{server.pid}/children")
    if children.exists():
        pids += [int(pid) for pid in children.read_text().split()]
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return total


def measure(name: str, server: subprocess.Popen, clients: int, seconds: float, work) -> dict:
    """Run the clients against one server; its figures, with the server's CPU per request."""
    cpu_before, load_before = server_cpu(server), os.getloadavg()[0]
    latencies, failures = run(clients, seconds, work)
    cpu = server_cpu(server) - cpu_before
    latencies.sort()
    return {
        "name": name,
        "rate": len(latencies) / seconds,
        "p50": statistics.median(latencies) * 1000,
        "p99": latencies[int(len(latencies) * 0.99) - 1] * 1000,
        "requests": len(latencies),
        "failures": failures,
        "cpu_ms": cpu / max(len(latencies), 1) * 1000,
        "cpu_cores": cpu / seconds,
        "load": (load_before + os.getloadavg()[0]) / 2,
    }


class Client:
    """A browser-like client: keep-alive connection and a cookie jar of one session cookie."""

    def __init__(self, port: int):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, body: dict | list | None = None, headers=None):
        headers = dict(headers or {})
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        data = None
        if body is not None:
            data = urlencode(body, doseq=True)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        for attempt in (1, 2):
            try:
                self.conn.request(method, path, body=data, headers=headers)
                response = self.conn.getresponse()
                text = response.read().decode()
                break
            except (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected):
                # The server closed an idle keep-alive connection: open a new one, as browsers do.
                self.conn.close()
                if attempt == 2:
                    raise
        for header, value in response.getheaders():
            if header.lower() == "set-cookie":
                name, _, rest = value.partition("=")
                self.cookies[name] = rest.split(";", 1)[0]
        return response.status, text


def seed_portal(url: str, clients: int) -> list[tuple[str, int]]:
    """One service, one clinician per client, each with a patient and an episode to save."""
    from flask_migrate import upgrade

    from portal import create_app
    from portal.accounts.users import hash_password
    from portal.extensions import db
    from portal.models import Episode, Patient, Service, User

    app = create_app({"SQLALCHEMY_DATABASE_URI": url})
    seeded = []
    with app.app_context():
        upgrade()
        service = Service(code="BEN", name="Bench FLS", nation="England", expected_caseload=1000)
        db.session.add(service)
        db.session.flush()
        hashed = hash_password(PASSWORD)
        from portal import clock

        fracture = clock.today() - timedelta(days=200)
        for number in range(clients):
            user = User(
                email=f"clinician{number}@bench.test",
                display_name=f"Clinician {number}",
                role="clinician",
                password_hash=hashed,
                session_version=1,
            )
            user.services = [service]
            patient = Patient(
                service_id=service.id,
                nhs_number=nhs_number(number),
                date_of_birth=date(1950, 1, 1),
                sex="Female",
            )
            db.session.add_all([user, patient])
            db.session.flush()
            episode = Episode(
                service_id=service.id,
                patient_id=patient.id,
                fracture_date=fracture,
                fracture_sites="Hip",
            )
            db.session.add(episode)
            db.session.flush()
            seeded.append((user.email, episode.id))
        db.session.commit()
        db.engine.dispose()
    return seeded


def nhs_number(seed: int) -> str:
    n = 600000000 + seed * 13
    while True:
        nine = f"{n:09d}"
        check = 11 - sum(int(d) * w for d, w in zip(nine, range(10, 1, -1), strict=True)) % 11
        check = 0 if check == 11 else check
        if check != 10:
            return nine + str(check)
        n += 1


def run(clients: int, seconds: float, work) -> tuple[list[float], int]:
    """Run `work(index, stop)` in `clients` threads; each returns its latencies and failures."""
    stop = time.perf_counter() + seconds
    results: list[tuple[list[float], int]] = [([], 0)] * clients
    barrier = threading.Barrier(clients)

    def target(index):
        barrier.wait()
        results[index] = work(index, stop)

    threads = [threading.Thread(target=target, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    latencies = [lat for lats, _ in results for lat in lats]
    failures = sum(f for _, f in results)
    return latencies, failures


def report(figures: list[dict]) -> None:
    """The runs side by side, then each against the first (the bare ORM insert)."""
    print(
        f"{'run':<28} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'server CPU/req':>15} "
        f"{'server cores':>12} {'load':>5} {'requests':>9} {'failed':>6}"
    )
    for f in figures:
        print(
            f"{f['name']:<28} {f['rate']:8.1f} {f['p50']:8.1f} {f['p99']:8.1f} "
            f"{f['cpu_ms']:12.2f} ms {f['cpu_cores']:12.2f} {f['load']:5.1f} {f['requests']:9d} "
            f"{f['failures']:6d}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--worker-class", default="gthread", choices=("gthread", "sync"))
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="alternate the bare insert and the save this many times",
    )
    parser.add_argument(
        "--floor",
        action="store_true",
        help="also measure a signed-in GET /health in each round: what the portal reaches before "
        "a save does anything (sign-in check, session, CSRF, hooks, headers)",
    )
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if args.worker_class == "sync" and args.threads != 1:
        parser.error("sync workers have one thread each: add --threads 1")

    work_dir = Path(tempfile.mkdtemp(prefix="bench-journey-"))
    servers = []
    try:
        # The bare Flask inserts.
        import sqlite3

        bare_ports = {}
        for name, source in (("sqlite3", BARE_SQLITE_APP), ("orm", BARE_ORM_APP)):
            bare_db = work_dir / f"bare_{name}.db"
            with sqlite3.connect(bare_db) as conn:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("CREATE TABLE rows (id INTEGER PRIMARY KEY, value TEXT NOT NULL)")
            (work_dir / f"bare_{name}.py").write_text(f"DB = {str(bare_db)!r}\n" + source)
            bare_ports[name] = free_port()
            servers.append(gunicorn(f"bare_{name}:app", bare_ports[name], {}, args, work_dir))

        # The portal.
        portal_db = work_dir / "portal.db"
        url = f"sqlite:///{portal_db}"
        seeded = seed_portal(url, args.clients)
        portal_port = free_port()
        env = {
            "DATABASE_URL": url,
            "SECRET_KEY": uuid.uuid4().hex,
            "PORTAL_INSTANCE_PATH": str(work_dir / "instance"),
        }
        servers.append(gunicorn("wsgi:app", portal_port, env, args, ROOT))
        for port in bare_ports.values():
            wait_for(port, "/")
        wait_for(portal_port, "/health")

        def bare_work(port, index, stop):
            client, latencies, failures = Client(port), [], 0
            while time.perf_counter() < stop:
                started = time.perf_counter()
                status, _ = client.request("POST", "/insert", {"value": f"client {index}"})
                latencies.append(time.perf_counter() - started)
                failures += status != 200
            return latencies, failures

        sessions = []
        for email, episode_id in seeded:
            client = Client(portal_port)
            status, page = client.request("GET", "/auth/sign-in")
            token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)
            status, _ = client.request(
                "POST", "/auth/sign-in", {"csrf_token": token, "email": email, "password": PASSWORD}
            )
            assert status == 302, f"sign-in failed: {status}"
            _, body = client.request("GET", "/csrf-token")
            sessions.append((client, json.loads(body)["csrf_token"], episode_id, {"version": 1}))

        def portal_work(index, stop):
            # The version read back carries over from one round to the next.
            client, token, episode_id, kept = sessions[index]
            latencies, failures, version, answer = [], 0, kept["version"], kept["version"]
            headers = {"HX-Request": "true", "X-CSRFToken": token}
            while time.perf_counter() < stop:
                answer += 1
                form = {
                    "submission_id": str(uuid.uuid4()),
                    "version": str(version),
                    "bone_therapy": "Alendronate",
                    "calcium_vitd": "Yes" if answer % 2 else "No",
                }
                started = time.perf_counter()
                status, body = client.request(
                    "POST", f"/episodes/{episode_id}/stages/treatment", form, headers
                )
                latencies.append(time.perf_counter() - started)
                if status != 200:
                    failures += 1
                    continue
                version = int(re.search(r'name="version" value="(\d+)"', body).group(1))
            kept["version"] = version
            return latencies, failures

        def health_work(index, stop):
            client, latencies, failures = sessions[index][0], [], 0
            while time.perf_counter() < stop:
                started = time.perf_counter()
                status, _ = client.request("GET", "/health")
                latencies.append(time.perf_counter() - started)
                failures += status != 200
            return latencies, failures

        print(
            f"{args.clients} concurrent clients, {args.seconds:.0f} s each, {args.rounds} round(s), "
            f"gunicorn {args.workers} {args.worker_class} workers x {args.threads} threads, "
            f"SQLite (WAL); {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start"
        )
        bare_orm_server, bare_sqlite_server, portal_server = servers[1], servers[0], servers[2]
        figures, ratios, floors = [], [], []
        for done in range(args.rounds):
            # The bare insert and the save back to back in each round, so a neighbour's burst
            # on a shared machine falls on both of a round's figures, not on one side only.
            suffix = f" #{done + 1}" if args.rounds > 1 else ""
            orm = measure(
                "bare Flask insert, ORM" + suffix,
                bare_orm_server,
                args.clients,
                args.seconds,
                lambda i, stop: bare_work(bare_ports["orm"], i, stop),
            )
            saves = measure(
                "portal stage save (htmx)" + suffix,
                portal_server,
                args.clients,
                args.seconds,
                portal_work,
            )
            figures += [orm, saves]
            ratios.append(saves["rate"] / orm["rate"])
            if args.floor:
                health = measure(
                    "portal signed-in GET /health" + suffix,
                    portal_server,
                    args.clients,
                    args.seconds,
                    health_work,
                )
                figures.append(health)
                floors.append(health["rate"] / orm["rate"])
        raw = measure(
            "bare Flask insert, sqlite3",
            bare_sqlite_server,
            args.clients,
            args.seconds,
            lambda i, stop: bare_work(bare_ports["sqlite3"], i, stop),
        )
        report([*figures, raw])
        print(
            f"stage save / bare ORM insert: throughput {statistics.median(ratios):.2f} "
            f"(target at least 0.50; "
            + (
                f"median of rounds {', '.join(f'{r:.2f}' for r in ratios)}; "
                if args.rounds > 1
                else ""
            )
            + f"p50 {saves['p50'] / orm['p50']:.1f}x, p99 {saves['p99'] / orm['p99']:.1f}x, "
            f"server CPU per request {saves['cpu_ms'] / orm['cpu_ms']:.1f}x in the last round)"
        )
        if floors:
            print(
                f"signed-in GET /health / bare ORM insert: throughput "
                f"{statistics.median(floors):.2f} (the floor: the portal's protections, no save"
                + (f"; rounds {', '.join(f'{r:.2f}' for r in floors)}" if args.rounds > 1 else "")
                + ")"
            )
        print(f"stage save / bare sqlite3 insert: throughput {saves['rate'] / raw['rate']:.2f}")
    finally:
        for server in servers:
            server.terminate()
            server.wait(timeout=30)
        shutil.rmtree(work_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
