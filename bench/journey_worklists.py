"""Server time of the worklist pages for a service of 30,000 episodes.

    python bench/journey_worklists.py [--episodes 30000] [--repeat 30] [--keep PATH.db]

Fills a temporary SQLite database with bench/make_dataset.py (one service, the demo's realistic
generator), signs in a clinician of that service and requests each worklist page (first page,
default sort; then filtered by overdue, sorted by NHS number, and a later page), the worklist
index and the home page with its counts, `--repeat` times each, in process: the time measured is
the app's handling of the request (routing, sign-in check, queries, rendering), without a network.
Prints the median and 95th percentile per page (target: under 100 ms).
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
PASSWORD = "bench-password-for-worklists-1"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--episodes", type=int, default=30_000)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument(
        "--keep", help="use (or fill, if new) this SQLite file instead of a temporary one"
    )
    args = parser.parse_args()

    work_dir = None if args.keep else Path(tempfile.mkdtemp(prefix="bench-worklists-"))
    path = Path(args.keep) if args.keep else work_dir / "portal.db"
    try:
        return measure(args, path)
    finally:
        if work_dir is not None:
            shutil.rmtree(work_dir, ignore_errors=True)


def measure(args, path: Path) -> int:
    import make_dataset

    if not path.exists():
        started = time.perf_counter()
        if make_dataset.main([str(path), "--episodes", str(args.episodes), "--services", "1"]) != 0:
            return 1
        print(f"dataset made in {time.perf_counter() - started:.0f} s")

    from sqlalchemy import func, select

    from portal import create_app
    from portal.accounts.users import hash_password
    from portal.extensions import db
    from portal.models import Episode, Service, User

    app = create_app(
        {"SQLALCHEMY_DATABASE_URI": f"sqlite:///{path.resolve()}", "RATELIMIT_ENABLED": False}
    )
    with app.app_context():
        service = db.session.scalars(select(Service)).one()
        episodes = db.session.scalar(
            select(func.count(Episode.id)).where(Episode.service_id == service.id)
        )
        email = "worklist-bench@bench.test"
        if db.session.scalar(select(User).where(User.email == email)) is None:
            user = User(
                email=email,
                display_name="Bench clinician",
                role="clinician",
                password_hash=hash_password(PASSWORD),
                session_version=1,
            )
            user.services = [service]
            db.session.add(user)
            db.session.commit()
        code = service.code

    client = app.test_client()
    page = client.get("/auth/sign-in").get_data(as_text=True)
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)
    signed = client.post(
        "/auth/sign-in", data={"csrf_token": token, "email": email, "password": PASSWORD}
    )
    assert signed.status_code == 302, signed.status_code

    from portal.journey.worklists import WORKLISTS

    # The NHS number filter is posted (never in a URL), with the session's CSRF token.
    csrf = client.get("/csrf-token").get_json()["csrf_token"]
    requests = [("GET", "/", None), ("GET", "/worklists", None)]
    for key in WORKLISTS:
        requests.append(("GET", f"/worklists/{key}", None))
    requests += [
        ("GET", "/worklists/followup16?status=overdue", None),
        ("GET", "/worklists/incomplete?sort=nhs_number&order=desc", None),
        ("GET", "/worklists/awaiting-assessment?page=20", None),
        ("POST", "/worklists/followup52", {"nhs": "123", "csrf_token": csrf}),
    ]
    print(f"service {code}: {episodes} episodes; {args.repeat} requests per page, in process")
    print(f"{'page':<52} {'median':>9} {'p95':>9} {'listed':>8}")
    worst = 0.0
    for method, url, form in requests:
        label = f"{url} (posted nhs={form['nhs']})" if form else url
        client.open(url, method=method, data=form)  # warm the template and statement caches
        times = []
        for _ in range(args.repeat):
            started = time.perf_counter()
            response = client.open(url, method=method, data=form)
            times.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, (label, response.status_code)
        listed = re.search(r"(\d+) episodes?[,.]", response.get_data(as_text=True))
        times.sort()
        p95 = times[max(0, int(len(times) * 0.95) - 1)]
        worst = max(worst, p95)
        print(
            f"{label:<52} {statistics.median(times):7.1f}ms {p95:7.1f}ms {listed.group(1) if listed else '':>8}"
        )
    print(f"slowest p95: {worst:.1f} ms (target under 100 ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
