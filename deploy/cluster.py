"""Two portal instances behind HAProxy on one machine (README, "Production"): what scripts/cluster
runs, and what the cross-instance tests (tests/cluster/) and bench/cluster_load.py start.

PostgreSQL and Redis are used as installed (they are not started here). The database is migrated
once, before any instance starts (as a deploy does); then two gunicorn instances
(deploy/gunicorn.conf.py) on their own ports, the queue's workers (scripts/worker) and HAProxy (deploy/haproxy.cfg) in front. Every process started here is
stopped when the cluster stops.

    python -m deploy.cluster [--port 8000] [--demo]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

ROOT = Path(__file__).resolve().parent.parent
HAPROXY_CONFIG = ROOT / "deploy" / "haproxy.cfg"
GUNICORN_CONFIG = ROOT / "deploy" / "gunicorn.conf.py"
WORKER_SCRIPT = ROOT / "scripts" / "worker"
DEFAULT_DATABASE = "postgresql+psycopg://postgres@127.0.0.1:5432/fls_portal"
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"
RESTART_DELAY_SECONDS = 3
# Variables of the calling environment that would change what the instances run against.
_OWN_VARIABLES = ("FLASK_", "PORTAL_", "DATABASE_URL", "SECRET_KEY", "REDIS_URL")


class ClusterError(RuntimeError):
    pass


def haproxy() -> str | None:
    """HAProxy's program (Debian's package puts it in /usr/sbin), or None when not installed."""
    return shutil.which("haproxy") or next(
        (p for p in ("/usr/sbin/haproxy", "/usr/local/sbin/haproxy") if os.access(p, os.X_OK)),
        None,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def answers(url: str, timeout: float = 2.0) -> int | None:
    """The HTTP status of a GET, or None when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except (OSError, urllib.error.URLError):
        return None


@dataclass
class Cluster:
    """The processes of one cluster; `start()` starts them all, `stop()` ends every one."""

    database_url: str
    redis_url: str
    secret_key: str
    workdir: Path
    balancer_port: int = 0
    instance_ports: tuple[int, int] = (0, 0)
    # Proxies in front of each instance whose X-Forwarded-For is believed: HAProxy (1), plus the
    # hospital's own proxy where there is one.
    trusted_proxies: int = 1
    extra_env: dict[str, str] = field(default_factory=dict)
    instances: list[subprocess.Popen | None] = field(default_factory=lambda: [None, None])
    workers: subprocess.Popen | None = None
    balancer: subprocess.Popen | None = None

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.balancer_port = self.balancer_port or free_port()
        self.instance_ports = (
            self.instance_ports[0] or free_port(),
            self.instance_ports[1] or free_port(),
        )

    @property
    def url(self) -> str:
        """The balancer: where the nurses' browsers go."""
        return f"http://127.0.0.1:{self.balancer_port}"

    def instance_url(self, index: int) -> str:
        return f"http://127.0.0.1:{self.instance_ports[index]}"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(_OWN_VARIABLES)}
        env.update(
            {
                "DATABASE_URL": self.database_url,
                "REDIS_URL": self.redis_url,
                # One key for every instance: a session or CSRF token signed by one is good on
                # the other.
                "SECRET_KEY": self.secret_key,
                # One instance folder for every process on this machine (uploads waiting to be
                # imported); across machines it is shared storage (README).
                "PORTAL_INSTANCE_PATH": str(self.workdir / "instance"),
                "PORTAL_TRUST_PROXY": str(self.trusted_proxies),
                "FLASK_APP": "wsgi",
                "PYTHONPATH": str(ROOT),
                **self.extra_env,
            }
        )
        return env

    def _log(self, name: str):
        return open(self.workdir / f"{name}.log", "ab")  # noqa: SIM115 - the child keeps it

    def _spawn(self, name: str, command: list[str], env: dict[str, str] | None = None):
        # Each in its own process group, so that one signal reaches a master and its workers.
        with self._log(name) as log:
            return subprocess.Popen(
                command,
                cwd=ROOT,
                env=env or self.env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def flask(self, *args: str, stdin: str | None = None) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "flask", *args],
            cwd=ROOT,
            env=self.env(),
            input=stdin,
            capture_output=True,
            text=True,
            timeout=600,
        )
        if result.returncode != 0:
            raise ClusterError(f"flask {' '.join(args)} failed: {result.stderr[-2000:]}")
        return result.stdout

    def migrate(self) -> None:
        """Once, before the instances start: an instance never migrates at start (two would race)."""
        self.flask("db", "upgrade")

    # Instances -----------------------------------------------------------------------------

    def start_instance(self, index: int, wait: bool = True) -> None:
        if self.instances[index] is not None:
            raise ClusterError(f"instance {index + 1} is already running")
        self.instances[index] = self._spawn(
            f"instance{index + 1}",
            [
                sys.executable,
                "-m",
                "gunicorn",
                "-c",
                str(GUNICORN_CONFIG),
                "--bind",
                f"127.0.0.1:{self.instance_ports[index]}",
                "wsgi:app",
            ],
        )
        if wait:
            self.wait_ready(index)

    def wait_ready(self, index: int, seconds: float = 60) -> None:
        process = self.instances[index]
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if process is not None and process.poll() is not None:
                raise ClusterError(f"instance {index + 1} exited: see {self.workdir}")
            if answers(self.instance_url(index) + "/ready") == 200:
                return
            time.sleep(0.1)
        raise ClusterError(f"instance {index + 1} was not ready within {seconds} seconds")

    def kill_instance(self, index: int) -> None:
        """SIGKILL to the master and its workers at once: a crash, nothing finishes."""
        process = self.instances[index]
        if process is None:
            return
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait()
        self.instances[index] = None

    def reload_instance(self, index: int) -> None:
        """SIGHUP: gunicorn starts new workers on the new code and lets the old ones finish."""
        process = self.instances[index]
        if process is None:
            raise ClusterError(f"instance {index + 1} is not running")
        process.send_signal(signal.SIGHUP)

    def stop_instance(self, index: int) -> None:
        """SIGTERM: requests under way finish (graceful_timeout), then the instance ends."""
        process = self.instances[index]
        if process is None:
            return
        _terminate(process)
        self.instances[index] = None

    # Queue workers and the balancer -------------------------------------------------------

    def start_workers(self) -> bool:
        """The job queue's workers (scripts/worker: Huey's consumer on the Redis queue)."""
        self.workers = self._spawn("workers", [str(WORKER_SCRIPT)])
        return True

    def start_balancer(self) -> None:
        program = haproxy()
        if program is None:
            raise ClusterError("HAProxy is not installed (as root: apt-get install -y haproxy)")
        env = {
            **self.env(),
            "BALANCER_ADDRESS": f"127.0.0.1:{self.balancer_port}",
            "PORTAL_1": f"127.0.0.1:{self.instance_ports[0]}",
            "PORTAL_2": f"127.0.0.1:{self.instance_ports[1]}",
        }
        # -db: in the foreground, so that it ends with this process group.
        self.balancer = self._spawn("haproxy", [program, "-db", "-f", str(HAPROXY_CONFIG)], env)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.balancer.poll() is not None:
                raise ClusterError(f"HAProxy exited: see {self.workdir / 'haproxy.log'}")
            if answers(self.url + "/ready") == 200:
                return
            time.sleep(0.1)
        raise ClusterError("HAProxy did not answer within 30 seconds")

    def wait_balanced(self, seconds: float = 30) -> set[str]:
        """Until the balancer has sent requests to both instances (each passed its checks)."""
        seen: set[str] = set()
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and len(seen) < 2:
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=2) as response:
                    seen.add(response.headers.get("X-Portal-Instance", ""))
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.1)
        if len(seen) < 2:
            raise ClusterError(f"the balancer sent requests only to {seen}")
        return seen

    # The whole ----------------------------------------------------------------------------

    def start(self) -> Cluster:
        try:
            self.migrate()
            self.start_instance(0)
            self.start_instance(1)
            self.start_workers()
            self.start_balancer()
            self.wait_balanced()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Everything started here, the balancer first (no request reaches a stopping instance)."""
        if self.balancer is not None:
            _terminate(self.balancer)
            self.balancer = None
        for index in (0, 1):
            self.stop_instance(index)
        if self.workers is not None:
            _terminate(self.workers)
            self.workers = None

    def __enter__(self) -> Cluster:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def _terminate(process: subprocess.Popen, seconds: float = 35) -> None:
    """SIGTERM to the process group, SIGKILL after `seconds`."""
    for sent in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sent)
        except ProcessLookupError:
            break
        try:
            process.wait(timeout=seconds)
            break
        except subprocess.TimeoutExpired:
            continue
    process.wait()


def create_database_if_missing(url: str) -> None:
    """PostgreSQL as installed: the portal's database is made on first use."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    target = make_url(url)
    if not target.drivername.startswith("postgresql"):
        return
    engine = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            found = connection.execute(
                text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": target.database}
            ).first()
            if found is None:
                connection.execute(text(f'CREATE DATABASE "{target.database}"'))
    finally:
        engine.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    parser.add_argument("--instance-ports", default="8001,8002")
    parser.add_argument("--demo", action="store_true", help="load the demo into an empty database")
    parser.add_argument("--workdir", default=str(ROOT / "instance" / "cluster"))
    args = parser.parse_args()
    first, second = (int(p) for p in args.instance_ports.split(","))
    database_url = os.environ.get("DATABASE_URL", DEFAULT_DATABASE)
    workdir = Path(args.workdir)
    secret_key = os.environ.get("SECRET_KEY") or _kept_secret(workdir / "secret_key")
    create_database_if_missing(database_url)
    cluster = Cluster(
        database_url=database_url,
        redis_url=os.environ.get("REDIS_URL", DEFAULT_REDIS),
        secret_key=secret_key,
        workdir=workdir,
        balancer_port=args.port,
        instance_ports=(first, second),
        trusted_proxies=int(os.environ.get("PORTAL_TRUST_PROXY", "1")),
    )

    def end(signum: int, frame: object) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, end)
    signal.signal(signal.SIGHUP, end)
    try:
        cluster.start()
        if args.demo:
            print(cluster.flask("demo"), end="")
        print(
            f"FLS Portal at {cluster.url} (instances {cluster.instance_url(0)} and "
            f"{cluster.instance_url(1)}, logs in {workdir}); Ctrl-C stops everything",
            flush=True,
        )
        while True:
            for index, process in enumerate(cluster.instances):
                if process is not None and process.poll() is not None:
                    print(f"instance {index + 1} ended; starting it again", file=sys.stderr)
                    cluster.instances[index] = None
                    # Once the balancer has taken it out (2 failed checks a second apart):
                    # gunicorn opens its port before its workers are ready to answer.
                    time.sleep(RESTART_DELAY_SECONDS)
                    cluster.start_instance(index)
            time.sleep(1)
    except KeyboardInterrupt:
        return 0
    finally:
        cluster.stop()


def _kept_secret(path: Path) -> str:
    if not path.exists():
        import secrets

        path.parent.mkdir(parents=True, exist_ok=True)
        with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as kept:
            kept.write(secrets.token_hex(32))
    return path.read_text().strip()


if __name__ == "__main__":
    sys.exit(main())
