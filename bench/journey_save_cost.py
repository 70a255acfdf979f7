"""What one request costs in process: a bare Flask ORM insert, a signed-in GET /health, a stage save.

    python bench/journey_save_cost.py                  # CPU time per request, interleaved batches
    python bench/journey_save_cost.py --instructions   # instructions per request, under callgrind

The three requests are those of bench/journey_saves.py, without the HTTP server: the bare Flask app
whose POST inserts one row through Flask-SQLAlchemy's ORM; the portal's `GET /health` for a
signed-in clinician (the sign-in check, session, request hooks and headers, one `SELECT 1`); and
the portal's htmx save of the treatment stage (CSRF header, a fresh submission id, the version read
back from the previous answer, an answer that changes every time), each on its own SQLite file
(WAL, `synchronous=NORMAL`), through Flask's test client.

CPU time on a shared virtual machine moves by up to 2x from one second to the next when its
neighbours are busy, so the CPU figures come from batches of the three taken in turn (the lowest
and the median batch are printed). `--instructions` counts instructions instead, under valgrind's
callgrind (Debian package `valgrind`): the same code counts the same within about 1%, whatever
else the machine runs. Only the requests are counted: instrumentation is switched on
(`callgrind_control -i on`) after start-up and warm-up, and off after the last request. It takes
one to two minutes (start-up runs 20 to 50 times slower under valgrind).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import journey_saves  # noqa: E402  (the same apps and seed as the throughput bench)

REQUESTS = ("bare ORM insert", "signed-in GET /health", "stage save (htmx)")
WARM_UP = 30


def bare_insert(work_dir: Path) -> Callable[[], None]:
    """The bare Flask app of journey_saves, in process: one POST /insert."""
    database = work_dir / "bare.db"
    with sqlite3.connect(database) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE rows (id INTEGER PRIMARY KEY, value TEXT NOT NULL)")
    (work_dir / "bare_orm.py").write_text(f"DB = {str(database)!r}\n" + journey_saves.BARE_ORM_APP)
    sys.path.insert(0, str(work_dir))
    import bare_orm

    client = bare_orm.app.test_client()

    def insert() -> None:
        response = client.post("/insert", data={"value": "client 0"})
        assert response.status_code == 200, response.status_code

    return insert


def portal_requests(work_dir: Path) -> tuple[Callable[[], None], Callable[[], None]]:
    """A signed-in clinician's GET /health and stage save, through the portal's test client."""
    url = f"sqlite:///{work_dir / 'portal.db'}"
    os.environ["PORTAL_INSTANCE_PATH"] = str(work_dir / "instance")
    ((email, episode_id),) = journey_saves.seed_portal(url, 1)
    from portal import create_app

    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "SECRET_KEY": uuid.uuid4().hex})
    client = app.test_client()
    page = client.get("/auth/sign-in").get_data(as_text=True)
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)
    signed_in = client.post(
        "/auth/sign-in",
        data={"csrf_token": token, "email": email, "password": journey_saves.PASSWORD},
    )
    assert signed_in.status_code == 302, f"sign-in failed: {signed_in.status_code}"
    headers = {
        "HX-Request": "true",
        "X-CSRFToken": client.get("/csrf-token").get_json()["csrf_token"],
    }
    state = {"version": 1, "answer": 0}

    def health() -> None:
        response = client.get("/health")
        assert response.status_code == 200, response.status_code

    def save() -> None:
        state["answer"] += 1
        response = client.post(
            f"/episodes/{episode_id}/stages/treatment",
            data={
                "submission_id": str(uuid.uuid4()),
                "version": str(state["version"]),
                "bone_therapy": "Alendronate",
                "calcium_vitd": "Yes" if state["answer"] % 2 else "No",
            },
            headers=headers,
        )
        body = response.get_data(as_text=True)
        assert response.status_code == 200, (response.status_code, body[:300])
        state["version"] = int(re.search(r'name="version" value="(\d+)"', body).group(1))

    return health, save


def requests(work_dir: Path, names: tuple[str, ...] = REQUESTS) -> dict[str, Callable[[], None]]:
    """The named requests, warmed up (only the app they need is built)."""
    made = {}
    if REQUESTS[0] in names:
        made[REQUESTS[0]] = bare_insert(work_dir)
    if set(names) & set(REQUESTS[1:]):
        portal = dict(zip(REQUESTS[1:], portal_requests(work_dir), strict=True))
        made.update({name: request for name, request in portal.items() if name in names})
    for request in made.values():
        for _ in range(WARM_UP):
            request()
    return made


def cpu_times(rounds: int, batch: int) -> None:
    """CPU time per request: batches of each request taken in turn, so noise hits all three."""
    work_dir = Path(tempfile.mkdtemp(prefix="bench-save-cost-"))
    try:
        made = requests(work_dir)
        times: dict[str, list[float]] = {name: [] for name in made}
        for done in range(rounds):
            for name, request in made.items():
                started = time.process_time()
                for _ in range(batch):
                    request()
                times[name].append((time.process_time() - started) / batch * 1000)
            if sys.stderr.isatty():
                print(f"\rround {done + 1}/{rounds}", end="", file=sys.stderr, flush=True)
        if sys.stderr.isatty():
            print(file=sys.stderr)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    lowest = {name: min(values) for name, values in times.items()}
    median = {name: statistics.median(values) for name, values in times.items()}
    print(f"CPU time per request in process ({rounds} rounds of {batch} of each, in turn)")
    print(f"{'request':<24} {'lowest':>9} {'median':>9} {'x bare (lowest)':>16}")
    for name in made:
        print(
            f"{name:<24} {lowest[name]:6.3f} ms {median[name]:6.3f} ms "
            f"{lowest[name] / lowest[REQUESTS[0]]:16.1f}"
        )


def counted(name: str, count: int) -> None:
    """Run under callgrind: warm up, then count only `count` requests of one kind."""
    work_dir = Path(tempfile.mkdtemp(prefix="bench-save-cost-"))
    try:
        request = requests(work_dir, (name,))[name]
        subprocess.run(
            ["callgrind_control", "-i", "on", str(os.getpid())], check=True, capture_output=True
        )
        for _ in range(count):
            request()
        subprocess.run(
            ["callgrind_control", "-i", "off", str(os.getpid())], check=True, capture_output=True
        )
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)


def instructions(count: int) -> None:
    """Instructions per request: each kind in its own process under callgrind, all at once."""
    if not shutil.which("valgrind"):
        raise SystemExit("valgrind is not installed (Debian: apt-get install valgrind)")
    out_dir = Path(tempfile.mkdtemp(prefix="bench-save-cost-cg-"))
    runs = {}
    try:
        for index, name in enumerate(REQUESTS):
            command = [
                "valgrind",
                "--tool=callgrind",
                "--instr-atstart=no",
                f"--callgrind-out-file={out_dir / str(index)}",
                sys.executable,
                __file__,
                "--counted",
                name,
                "--count",
                str(count),
            ]
            runs[name] = subprocess.Popen(
                command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
            )
        print(
            f"counting {count} requests of each kind under callgrind (one to two minutes)",
            file=sys.stderr,
        )
        figures = {}
        for name, run in runs.items():
            _, stderr = run.communicate()
            found = re.search(r"Collected : (\d+)", stderr)
            if run.returncode != 0 or not found:
                raise SystemExit(f"{name}: callgrind run failed\n{stderr[-2000:]}")
            figures[name] = int(found.group(1)) / count
    finally:
        for run in runs.values():
            if run.poll() is None:
                run.kill()
        shutil.rmtree(out_dir, ignore_errors=True)
    bare = figures[REQUESTS[0]]
    print(f"Instructions per request in process (callgrind, {count} requests of each)")
    print(f"{'request':<24} {'instructions':>14} {'x bare':>7}")
    for name, value in figures.items():
        print(f"{name:<24} {value / 1e6:11.2f} M {value / bare:7.1f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="count instructions under callgrind instead of timing",
    )
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--batch", type=int, default=20)
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--counted", choices=REQUESTS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.counted:
        counted(args.counted, args.count)
    elif args.instructions:
        instructions(args.count)
    else:
        cpu_times(args.rounds, args.batch)
    return 0


if __name__ == "__main__":
    sys.exit(main())
