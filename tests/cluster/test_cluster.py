"""Two instances, one portal (issue 21): sessions, CSRF, signing out, rate limits, the KPI cache,
import progress and the offline outbox's idempotency hold whichever instance answers; the balancer
(deploy/haproxy.cfg) spreads requests over both without sticky sessions and keeps answering when
one instance is killed.

Requests name their instance (`cluster.instance_url(0)` or `(1)`) where the test is about one
instance doing what another started; the balancer's own tests go through `cluster.url`."""

from __future__ import annotations

import re
import threading
import time
import uuid
from datetime import date, timedelta

import pytest
from sqlalchemy import create_engine, text

from portal import clock
from tests.cluster.conftest import SERVICE, Browser
from tests.records_csv import csv_text, nhs_number, row

pytestmark = pytest.mark.cluster

HTMX = {"HX-Request": "true"}


@pytest.fixture
def a(cluster) -> str:
    return cluster.instance_url(0)


@pytest.fixture
def b(cluster) -> str:
    return cluster.instance_url(1)


@pytest.fixture(scope="module")
def database(cluster):
    engine = create_engine(cluster.database_url)
    yield engine
    engine.dispose()


_serial = iter(range(1000, 100000))


def registration(nhs: str, fracture: date) -> list[tuple[str, str]]:
    """The new-patient form as the browser posts it, with a fresh submission id."""
    fields = {
        "submission_id": str(uuid.uuid4()),
        "version": "",
        "nhs_number": nhs,
        "sex": "Female",
        "postcode": "sw1a2aa",
        "care_home_resident": "No",
        "admitted": "Yes",
        "fracture_sites": "Wrist",
    }
    for name, day in (
        ("date_of_birth", date(1950, 6, 15)),
        ("fracture_date", fracture),
        ("identification_date", fracture + timedelta(days=2)),
    ):
        fields |= {f"{name}-day": str(day.day), f"{name}-month": str(day.month)}
        fields[f"{name}-year"] = str(day.year)
    return list(fields.items())


def recent_fracture() -> date:
    # The servers run on the real date (not the suite's fixed day): a fracture a month before it.
    return clock.today() - timedelta(days=30)


def patients_with(database, nhs: str) -> int:
    with database.connect() as connection:
        return connection.execute(
            text("SELECT count(*) FROM patients WHERE nhs_number = :nhs"), {"nhs": nhs}
        ).scalar_one()


def test_the_balancer_spreads_a_signed_in_browser_over_both_instances(cluster):
    nurse = Browser()
    nurse.sign_in(cluster.url, "nurse@cluster.test")
    answers = [nurse.get(cluster.url + "/worklists") for _ in range(6)]
    assert {answer.status for answer in answers} == {200}
    # Round robin, no sticky session: the one signed-in browser meets both instances.
    assert {answer.instance for answer in answers} == {"portal1", "portal2"}


def test_signed_in_on_one_instance_works_on_the_other(a, b, database):
    nurse = Browser()
    nurse.sign_in(a, "nurse@cluster.test")
    home = nurse.get(b + "/")
    assert home.status == 200
    assert "Nurse" in home.body and "Sign out" in home.body
    nhs = nhs_number(next(_serial))
    saved = nurse.post(
        b + "/patients/new", registration(nhs, recent_fracture()), csrf=nurse.csrf_token(a)
    )
    assert saved.status == 303, saved.body[:2000]
    assert nurse.get(a + saved.location.removeprefix(b)).status == 200
    assert patients_with(database, nhs) == 1


def test_a_csrf_token_of_one_instance_is_accepted_by_the_other(a, b):
    nurse = Browser()
    nurse.sign_in(a, "nurse@cluster.test")
    token = nurse.csrf_token(a)
    assert nurse.post(b + "/auth/stay-signed-in", csrf=token).status == 200
    assert nurse.post(a + "/auth/stay-signed-in", csrf=nurse.csrf_token(b)).status == 200
    # And the check is on: no token, or another session's, is refused by either.
    assert nurse.post(b + "/auth/stay-signed-in").status == 400
    other = Browser()
    other.sign_in(b, "second.nurse@cluster.test")
    assert nurse.post(b + "/auth/stay-signed-in", csrf=other.csrf_token(b)).status == 400


def test_signing_out_on_one_instance_ends_the_session_on_the_other(a, b):
    nurse = Browser()
    nurse.sign_in(a, "nurse@cluster.test")
    stolen = Browser()
    stolen.cookies = dict(nurse.cookies)  # a copy of the cookie, as if taken before sign-out
    assert stolen.get(b + "/worklists").status == 200
    assert nurse.post(a + "/auth/sign-out", csrf=nurse.csrf_token(a)).status == 302
    refused = stolen.get(b + "/worklists")
    assert refused.status == 302 and "/auth/sign-in" in refused.location


def test_ending_the_other_sessions_on_one_instance_refuses_them_on_the_other(a, b):
    here, elsewhere = Browser(), Browser()
    here.sign_in(a, "lead@cluster.test")
    elsewhere.sign_in(b, "lead@cluster.test")
    assert elsewhere.get(a + "/worklists").status == 200
    confirmed = here.post(
        b + "/auth/confirm?next=/auth/sessions",
        {"password": "correct-horse-battery-9"},
        csrf=here.csrf_token(a),
    )
    assert confirmed.status == 302, confirmed.body[:2000]
    ended = here.post(a + "/auth/sessions/end-others", csrf=here.csrf_token(b))
    assert ended.status == 302, ended.body[:2000]
    for url in (a, b):
        refused = elsewhere.get(url + "/worklists")
        assert refused.status == 302 and "/auth/sign-in" in refused.location
    assert here.get(b + "/worklists").status == 200


def test_rate_limits_are_counted_once_for_both_instances(a, b):
    """The sign-in limit (20 a minute from one address, Flask-Limiter on Redis) counts the
    attempts sent to both instances: each alone saw only 10 when the 21st is refused."""
    visitor = Browser()

    def attempt(url: str, number: int):
        page = visitor.get(url + "/auth/sign-in")
        token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page.body)
        return visitor.post(
            url + "/auth/sign-in",
            # A different unknown account each time: the per-account throttle stays out of it.
            {"email": f"nobody{number}-{uuid.uuid4().hex[:6]}@cluster.test", "password": "x"},
            csrf=token.group(1),
        )

    for number in range(20):
        answer = attempt((a, b)[number % 2], number)
        assert answer.status == 200, (number, answer.status)
    for url in (a, b):
        refused = attempt(url, 99)
        assert refused.status == 429
        assert "Too many sign-in attempts from this address" in refused.body


def test_new_kpi_figures_on_one_instance_after_a_change_on_the_other(a, b):
    """The KPI cache (Redis) is keyed by each service's data version in the database: a save on
    one instance makes the other compute and show the new figures."""
    nurse = Browser()
    nurse.sign_in(a, "nurse@cluster.test")
    # The months holding the new fracture (with no period asked for, the page opens on months
    # whose every KPI is due, more than a year ago).
    month = recent_fracture().strftime("%Y-%m")
    csv = f"/kpis/2/data.csv?kind=months&from={month}&to={month}"
    before_b = nurse.get(b + csv)
    assert before_b.status == 200 and before_b.body.count("\n") >= 1
    assert nurse.get(a + csv).body == before_b.body  # the same figures, cached
    saved = nurse.post(
        a + "/patients/new",
        registration(nhs_number(next(_serial)), recent_fracture()),
        csrf=nurse.csrf_token(a),
    )
    assert saved.status == 303
    after_b = nurse.get(b + csv)
    assert after_b.body != before_b.body
    assert nurse.get(a + csv).body == after_b.body


def _wait_for_status(nurse: Browser, url: str, wanted: str, seconds: float = 60) -> str:
    deadline = time.monotonic() + seconds
    page = ""
    while time.monotonic() < deadline:
        page = nurse.get(url, headers={**HTMX, "X-Background-Request": "1"}).body
        if wanted in page:
            return page
        time.sleep(0.3)
    raise AssertionError(f"{url} never showed {wanted!r}: {page[:1500]}")


def test_import_progress_is_read_from_either_instance(a, b, database):
    nurse = Browser()
    nurse.sign_in(a, "nurse@cluster.test")
    first = next(_serial)
    rows = [
        row(service_code=SERVICE, nhs_number=nhs_number(first + n), fracture_date="2025-03-01",
            identification_date="2025-03-05", assessment_date="2025-04-01",
            dxa_date="2025-05-01")
        for n in range(30)
    ]  # fmt: skip
    for _ in range(29):
        next(_serial)
    uploaded = nurse.post(
        a + "/records/import",
        csrf=nurse.csrf_token(a),
        files={"file": ("clinic.csv", csv_text(rows).encode())},
    )
    assert uploaded.status == 303, uploaded.body[:2000]
    job = uploaded.location.removeprefix(a).removeprefix("http://localhost")
    assert re.fullmatch(r"/records/import/\d+", job), job
    checked = _wait_for_status(nurse, b + job + "/progress", "What this file would change")
    assert re.search(r'id="count-added">30<', checked)
    applied = nurse.post(b + job + "/apply", {"mode": "all"}, csrf=nurse.csrf_token(b))
    assert applied.status == 303, applied.body[:2000]
    done = _wait_for_status(nurse, a + job + "/progress", "Imported")
    assert "Added 30" in done
    assert patients_with(database, rows[0]["nhs_number"]) == 1


def test_the_same_submission_sent_to_both_instances_is_stored_once(a, b, database):
    """The offline outbox sends a waiting save again until it hears back: the copies may reach
    different instances, even at the same moment; the submission id keeps one."""
    nurse = Browser()
    nurse.sign_in(a, "nurse@cluster.test")
    token = nurse.csrf_token(a)
    nhs = nhs_number(next(_serial))
    form = registration(nhs, recent_fracture())
    answers: list = [None, None]
    barrier = threading.Barrier(2)

    def send(index: int, url: str) -> None:
        barrier.wait()
        answers[index] = nurse.post(url + "/patients/new", form, csrf=token, headers=HTMX)

    threads = [threading.Thread(target=send, args=(i, url)) for i, url in enumerate((a, b))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert [answer.status for answer in answers] == [200, 200], [
        (answer.status, answer.body[:500]) for answer in answers
    ]
    # Both answers lead to the one episode saved.
    assert answers[0].headers["hx-redirect"] == answers[1].headers["hx-redirect"]
    # Later copies, one to each instance, change nothing.
    for url in (b, a):
        again = nurse.post(url + "/patients/new", form, csrf=token, headers=HTMX)
        assert (
            again.status == 200
            and again.headers["hx-redirect"] == answers[0].headers["hx-redirect"]
        )
    assert patients_with(database, nhs) == 1
    with database.connect() as connection:
        stored = connection.execute(
            text("SELECT count(*) FROM submissions WHERE submission_id = :id"),
            {"id": dict(form)["submission_id"]},
        ).scalar_one()
    assert stored == 1


def test_the_balancer_keeps_answering_when_an_instance_is_killed(cluster):
    """SIGKILL to an instance: requests the balancer could not deliver go to the other one (it
    retries a refused connection), the health checks take the dead one out, and it is back in
    once started again."""
    nurse = Browser()
    nurse.sign_in(cluster.url, "second.nurse@cluster.test")
    cluster.kill_instance(0)
    try:
        answers = [nurse.get(cluster.url + "/worklists") for _ in range(10)]
        assert [answer.status for answer in answers] == [200] * 10
        assert {answer.instance for answer in answers} == {"portal2"}
    finally:
        cluster.start_instance(0)
    assert cluster.wait_balanced() == {"portal1", "portal2"}
    assert nurse.get(cluster.url + "/worklists").status == 200
