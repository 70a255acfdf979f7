"""Load test across two instances: simulated FLS nurses through HAProxy while one instance is
killed and the other restarted (issue 21, "Losing an instance loses nothing").

    python bench/cluster_load.py [--minutes 4] [--nurses 200] [--think 6] [--max-requests 200000]

The cluster is deploy/cluster.py's (what scripts/cluster runs: two gunicorn instances with
deploy/gunicorn.conf.py, HAProxy with deploy/haproxy.cfg, the queue's workers where present) on a
fresh PostgreSQL database (TEST_POSTGRES_URL's server, dropped afterwards) and the Redis at
REDIS_URL (default redis://127.0.0.1:6379/0). Traffic goes only to 127.0.0.1. Each nurse comes
from their own X-Forwarded-For address, as behind the hospital's proxy (the instances believe two
proxies: that one and HAProxy), signs in through the balancer, then until the time or the request
count runs out repeats: the worklists, one of their episodes' identification stage, a save of it
(a fresh submission id, htmx, CSRF header), and one turn in four the KPI page, with think time
between (uniform, mean --think seconds).

A save that fails (no answer, or 5xx) is sent again with the same submission id, as the offline
outbox does, up to 5 times a second apart. At 40% of the run instance 1 gets SIGKILL (master and
workers) and is started again 3 seconds later (once the balancer has taken it out); at 70% instance 2 gets SIGHUP (gunicorn's graceful
restart: new workers, the old ones finish their requests).

Prints p50/p95/p99 per kind of request outside and inside the seconds of the kill (from the kill
until the balancer's checks have the instance back), the errors clients saw, and checks in the
database that every acknowledged save is stored exactly once and every save given up after
errors at most once (one `submissions` row per submission id; saved stages = kept submissions =
audit update events). Exit 1 when a check fails. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import http.client
import os
import random
import re
import secrets
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from load_hardening import (  # noqa: E402 - bench scripts import their neighbours by path
    PASSWORD,
    _fields,
    create_database,
    drop_database,
    percentile,
    seed,
)

from deploy.cluster import Cluster  # noqa: E402

SAVE_ATTEMPTS = 5
# After the kill the balancer needs `fall` failed checks to take the instance out and, once it is
# started again, `rise` good ones to bring it back (deploy/haproxy.cfg: 1 s apart).
SETTLE_SECONDS = 3.0


@dataclass
class Sample:
    at: float
    kind: str
    seconds: float
    ok: bool


@dataclass
class Nurse:
    port: int
    email: str
    episodes: list[int]
    address: str
    cookie: str = ""
    csrf: str = ""
    forms: dict[int, dict[str, list[str]]] = field(default_factory=dict)
    samples: list[Sample] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    acknowledged: list[str] = field(default_factory=list)
    given_up: list[str] = field(default_factory=list)
    retried: int = 0
    resent_on_stale: int = 0
    connection: http.client.HTTPConnection | None = None

    def request(self, method, path, body=None, headers=None, kind=None):
        """(status, body), or (None, b"") when no answer came; every request is timed."""
        headers = {"X-Forwarded-For": self.address, **(headers or {})}
        if self.cookie:
            headers["Cookie"] = self.cookie
        for resend in (False, True):
            started = time.perf_counter()
            reused = self.connection is not None
            try:
                if self.connection is None:
                    self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                self.connection.request(method, path, body=body, headers=headers)
                response = self.connection.getresponse()
                data = response.read()
                break
            except (OSError, http.client.HTTPException) as error:
                if self.connection is not None:
                    self.connection.close()
                self.connection = None
                # The balancer closed an idle keep-alive connection as this request went out:
                # a browser sends it again on a new connection, once (a save carries its
                # submission id, so a repeat cannot save twice).
                stale = isinstance(
                    error, http.client.RemoteDisconnected | ConnectionResetError | BrokenPipeError
                )
                if reused and stale and not resend:
                    self.resent_on_stale += 1
                    continue
                if kind:
                    self.samples.append(Sample(time.monotonic(), kind, 0.0, False))
                    self.errors.append(f"{method} {kind}: {type(error).__name__}")
                return None, b""
        elapsed = time.perf_counter() - started
        for value in response.headers.get_all("Set-Cookie") or []:
            if value.startswith("session="):
                self.cookie = value.split(";", 1)[0]
        if kind:
            ok = response.status < 400
            self.samples.append(Sample(time.monotonic(), kind, elapsed, ok))
            if not ok:
                self.errors.append(f"{method} {kind}: {response.status}")
        return response.status, data

    def sign_in(self) -> None:
        _, page = self.request("GET", "/auth/sign-in")
        token = re.search(rb'name="csrf_token" type="hidden" value="([^"]+)"', page)
        body = urlencode(
            {"csrf_token": token.group(1).decode(), "email": self.email, "password": PASSWORD}
        )
        status, _ = self.request(
            "POST", "/auth/sign-in", body, {"Content-Type": "application/x-www-form-urlencoded"}
        )
        if status != 302:
            raise RuntimeError(f"{self.email} could not sign in: {status}")
        _, home = self.request("GET", "/")
        self.csrf = re.search(rb'name="csrf-token" content="([^"]+)"', home).group(1).decode()

    def open_stage(self, episode_id: int) -> None:
        status, section = self.request(
            "GET",
            f"/episodes/{episode_id}/stages/identification",
            headers={"HX-Request": "true"},
            kind="open stage",
        )
        if status == 200:
            self.forms[episode_id] = _fields(section.decode())

    def save(self, episode_id: int) -> None:
        fields = self.forms.get(episode_id)
        if fields is None:
            return
        fields["admitted"] = ["No" if fields.get("admitted", ["Yes"])[0] == "Yes" else "Yes"]
        submission = str(uuid.uuid4())
        fields["submission_id"] = [submission]
        body = urlencode([(k, v) for k, values in fields.items() for v in values])
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "HX-Request": "true",
            "X-CSRFToken": self.csrf,
        }
        for attempt in range(SAVE_ATTEMPTS):
            if attempt:
                self.retried += 1
                time.sleep(1)
            status, data = self.request(
                "POST", f"/episodes/{episode_id}/stages/identification", body, headers, "save"
            )
            if status == 200:
                self.acknowledged.append(submission)
                self.forms[episode_id] = _fields(data.decode())
                return
            if status is not None and status < 500:
                break  # refused (4xx): sending it again would be refused again
        self.given_up.append(submission)
        self.forms.pop(episode_id, None)  # the form is stale: open the stage again

    def work(self, until: float, think: float, budget: Budget) -> None:
        rng = random.Random(self.email)
        time.sleep(rng.uniform(0, 2 * think))  # nurses start at different moments
        turn = 0
        while time.monotonic() < until and budget.take(4):
            episode_id = self.episodes[turn % len(self.episodes)]
            # The KPI page one turn in four: nurses open it now and then, not after every save.
            steps = ("worklists", "open stage", "save") + (("KPI page",) if turn % 4 == 3 else ())
            for step in steps:
                if step == "worklists":
                    self.request("GET", "/worklists", kind="worklists")
                elif step == "open stage":
                    self.open_stage(episode_id)
                elif step == "save":
                    self.save(episode_id)
                else:
                    self.request("GET", "/kpis/", kind="KPI page")
                time.sleep(rng.uniform(0, 2 * think))
                if time.monotonic() >= until:
                    return
            turn += 1


class Budget:
    """The whole run's request count, shared by every nurse."""

    def __init__(self, requests: int) -> None:
        self.left = requests
        self.lock = threading.Lock()

    def take(self, count: int) -> bool:
        with self.lock:
            if self.left < count:
                return False
            self.left -= count
            return True


def events(cluster: Cluster, started: float, seconds: float, log: dict[str, float]) -> None:
    """The kill of instance 1 at 40% of the run, its restart, and the graceful restart of
    instance 2 at 70%."""
    time.sleep(max(0.0, started + 0.4 * seconds - time.monotonic()))
    log["kill"] = time.monotonic()
    cluster.kill_instance(0)
    # Started again once the balancer has taken it out (a supervisor's restart delay, e.g.
    # systemd's RestartSec=3): gunicorn opens its port before its workers have loaded the app,
    # and requests the balancer sent to a port open too early would wait in its queue.
    time.sleep(SETTLE_SECONDS)
    cluster.start_instance(0)  # waits until it answers /ready
    log["instance 1 ready"] = time.monotonic()
    time.sleep(max(0.0, started + 0.7 * seconds - time.monotonic()))
    log["graceful restart"] = time.monotonic()
    cluster.reload_instance(1)


def table(samples: list[Sample], title: str) -> None:
    print(f"\n{title}")
    print(f"{'request':<12} {'count':>7} {'errors':>7} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}")
    kinds: dict[str, list[Sample]] = defaultdict(list)
    for sample in samples:
        kinds[sample.kind].append(sample)
    for kind, group in sorted(kinds.items()) + [("all", samples)]:
        answered = [s.seconds for s in group if s.ok]
        errors = sum(1 for s in group if not s.ok)
        figures = (
            f"{percentile(answered, 50):>8.1f} {percentile(answered, 95):>8.1f} "
            f"{percentile(answered, 99):>8.1f}"
            if answered
            else f"{'-':>8} {'-':>8} {'-':>8}"
        )
        print(f"{kind:<12} {len(group):>7} {errors:>7} {figures}")


def check_saves(url: str, nurses: list[Nurse]) -> bool:
    from sqlalchemy import create_engine, text

    acknowledged = [s for n in nurses for s in n.acknowledged]
    given_up = [s for n in nurses for s in n.given_up]
    engine = create_engine(url)
    with engine.connect() as conn:
        kept = Counter(
            dict(
                conn.execute(
                    text("SELECT submission_id, COUNT(*) FROM submissions GROUP BY submission_id")
                ).all()
            )
        )
        versions = conn.scalar(text("SELECT COALESCE(SUM(version - 1), 0) FROM episodes"))
        updates = conn.scalar(
            text(
                "SELECT COUNT(*) FROM audit_events "
                "WHERE action = 'update' AND entity_type = 'episode'"
            )
        )
    engine.dispose()
    lost = [s for s in acknowledged if kept[s] == 0]
    twice = [s for s in acknowledged + given_up if kept[s] > 1]
    given_up_stored = sum(1 for s in given_up if kept[s] == 1)
    rows = sum(kept.values())
    print(
        f"\nsaves acknowledged {len(acknowledged)}: stored once {sum(1 for s in acknowledged if kept[s] == 1)}, "
        f"lost {len(lost)}, stored twice {len(twice)}"
    )
    print(
        f"saves given up after errors {len(given_up)}: stored once {given_up_stored} "
        f"(the answer was lost), not stored {len(given_up) - given_up_stored}, stored twice "
        f"{sum(1 for s in given_up if kept[s] > 1)}"
    )
    print(
        f"kept submissions {rows}, saved stages (episode versions) {versions}, "
        f"audit update events {updates}"
    )
    return not lost and not twice and rows == versions == updates


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=4.0)
    parser.add_argument("--nurses", type=int, default=200)
    parser.add_argument("--think", type=float, default=6.0, help="mean seconds between requests")
    parser.add_argument("--episodes", type=int, default=5, help="episodes per nurse")
    parser.add_argument("--max-requests", type=int, default=200_000)
    args = parser.parse_args()
    seconds = args.minutes * 60

    admin_url, name, url = create_database("postgresql")
    workdir = Path(tempfile.mkdtemp(prefix="fls-cluster-load-"))
    cluster = Cluster(
        database_url=url,
        redis_url=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
        secret_key=secrets.token_hex(32),
        workdir=workdir,
        trusted_proxies=2,
    )
    log: dict[str, float] = {}
    try:
        print(f"seeding {args.nurses} nurses x {args.episodes} episodes ...", file=sys.stderr)
        nurses_data = seed(url, args.nurses, args.episodes)
        print("starting the cluster ...", file=sys.stderr)
        cluster.start()
        nurses = [
            Nurse(cluster.balancer_port, email, ids, f"10.{n // 250}.{n % 250}.{1 + n % 200}")
            for n, (email, ids) in enumerate(nurses_data)
        ]
        print("signing in ...", file=sys.stderr)
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(Nurse.sign_in, nurses))
        print(f"running {seconds:.0f} s ...", file=sys.stderr)
        started = time.monotonic()
        until = started + seconds
        budget = Budget(args.max_requests)
        threads = [
            threading.Thread(target=n.work, args=(until, args.think, budget)) for n in nurses
        ]
        threads.append(threading.Thread(target=events, args=(cluster, started, seconds, log)))
        load_before = os.getloadavg()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        load_after = os.getloadavg()
        elapsed = time.monotonic() - started
    finally:
        cluster.stop()

    samples = [s for n in nurses for s in n.samples]
    window = (log["kill"], log["instance 1 ready"] + SETTLE_SECONDS)
    outside = [s for s in samples if not window[0] <= s.at <= window[1]]
    inside = [s for s in samples if window[0] <= s.at <= window[1]]
    print(
        f"{args.nurses} nurses through HAProxy for {elapsed:.0f} s, think time mean {args.think} s; "
        f"2 instances x {os.environ.get('PORTAL_WORKERS', '2')} gthread workers x "
        f"{os.environ.get('PORTAL_THREADS', '4')} threads; PostgreSQL and Redis on this machine"
    )
    print(
        f"{os.cpu_count()} CPUs; load average (1, 5, 15 min) before {load_before}, after "
        f"{tuple(round(x, 2) for x in load_after)}"
    )
    print(
        f"requests {len(samples)} ({len(samples) / elapsed:.1f}/s); instance 1 killed at "
        f"{log['kill'] - started:.0f} s, ready again {log['instance 1 ready'] - log['kill']:.1f} s "
        f"later; instance 2 restarted gracefully at {log['graceful restart'] - started:.0f} s"
    )
    table(outside, "outside the seconds of the kill (graceful restart included)")
    table(inside, f"during the kill ({window[1] - window[0]:.1f} s: until instance 1 is back)")
    errors = Counter(e for n in nurses for e in n.errors)
    print(f"\nerrors seen by clients {sum(errors.values())}:")
    for error, count in errors.most_common(10):
        print(f"  {count:>5} {error}")
    print(f"saves sent again after an error: {sum(n.retried for n in nurses)}")
    print(
        "requests sent again on a keep-alive connection the balancer had closed (as a browser "
        f"does): {sum(n.resent_on_stale for n in nurses)}"
    )
    consistent = check_saves(url, nurses)
    print("every acknowledged save stored exactly once, none twice:", "yes" if consistent else "NO")
    print(f"logs of the instances and of HAProxy: {workdir}")
    drop_database(admin_url, name)
    return 0 if consistent else 1


if __name__ == "__main__":
    sys.exit(main())
