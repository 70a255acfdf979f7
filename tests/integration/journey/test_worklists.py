"""Worklist membership on each side of every window edge; deceased and deleted never appear;
sorting, filtering, paging, and the counts on the home page."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from portal import clock
from tests.conftest import TEST_TODAY

from .conftest import nhs_number

COMPLETE = dict(
    identification_date=None,
    admitted="No",
    fracture_sites="Hip",
    assessment_date=None,
    previous_fracture="No",
    smoker="Never",
    on_bone_therapy_at_fracture="No",
    dxa_status="Not known",
    falls_assessed="Yes",
    bone_therapy="Alendronate",
    calcium_vitd="Yes",
    followup16_done=None,
    strength_balance16="Yes",
    followup52_done=None,
)


@pytest.fixture
def add_episode(db):
    from portal.models import Episode, Patient

    counter = iter(range(1000, 100000))

    def make(service, days_ago: int, *, dead=False, deleted=False, **fields):
        today = TEST_TODAY
        fracture = today - timedelta(days=days_ago)
        patient = Patient(
            service_id=service.id,
            nhs_number=nhs_number(next(counter)),
            date_of_birth=date(1940, 1, 1),
            sex="Female",
            postcode="LS1 4AP",
            care_home_resident="No",
            date_of_death=today if dead else None,
        )
        db.session.add(patient)
        db.session.flush()
        values = {
            **COMPLETE,
            "identification_date": fracture,
            "assessment_date": fracture,
            **fields,
        }
        episode = Episode(
            service_id=service.id,
            patient_id=patient.id,
            fracture_date=fracture,
            deleted_at=clock.utcnow() if deleted else None,
            **values,
        )
        db.session.add(episode)
        db.session.commit()
        return episode

    return make


def shown(episode) -> str:
    """The episode's NHS number as pages show it (999 590 8301)."""
    from portal.journey.rules import spaced_nhs_number

    return spaced_nhs_number(episode.patient.nhs_number)


def _members(key, service, **filters):
    from portal.journey import worklists

    page = worklists.page(worklists.WORKLISTS[key], service, TEST_TODAY, **filters)
    return {row.episode_id: row for row in page.rows}


@pytest.mark.parametrize(
    "key, field, inside, outside",
    [
        ("followup16", {"followup16_done": None}, 84, 83),
        ("followup52", {"followup52_done": None}, 336, 335),
    ],
)
def test_window_opens(make_service, add_episode, key, field, inside, outside):
    service = make_service()
    listed = add_episode(service, inside, **field)
    not_yet = add_episode(service, outside, **field)
    members = _members(key, service)
    assert listed.id in members and not members[listed.id].overdue
    assert not_yet.id not in members


@pytest.mark.parametrize(
    "key, field, last_due",
    [
        ("followup16", {"followup16_done": None}, 112),
        ("followup52", {"followup52_done": None}, 392),
        ("awaiting-assessment", {"assessment_date": None}, 90),
        ("dxa-not-done", {"dxa_status": "Recommended", "dxa_date": None}, 90),
    ],
)
def test_window_closes(make_service, add_episode, key, field, last_due):
    service = make_service()
    due = add_episode(service, last_due, **field)
    late = add_episode(service, last_due + 1, **field)
    members = _members(key, service)
    assert members[due.id].overdue is False
    assert members[late.id].overdue is True
    assert set(_members(key, service, status="overdue")) == {late.id}
    assert set(_members(key, service, status="due")) == {due.id}


def test_answered_deceased_and_deleted_never_appear(make_service, add_episode):
    service = make_service()
    waiting = add_episode(service, 100, followup16_done=None)
    answered = add_episode(service, 100, followup16_done="Not known")
    dead = add_episode(service, 100, followup16_done=None, dead=True)
    deleted = add_episode(service, 100, followup16_done=None, deleted=True)
    assert set(_members("followup16", service)) == {waiting.id}
    assert answered.id and dead.id and deleted.id


def test_assessment_and_dxa_lists_from_day_zero(make_service, add_episode):
    service = make_service()
    fresh = add_episode(service, 0, assessment_date=None)
    dxa_done = add_episode(service, 10, dxa_status="Recommended", dxa_date=TEST_TODAY)
    dxa_waiting = add_episode(service, 10, dxa_status="Recommended", dxa_date=None)
    assert fresh.id in _members("awaiting-assessment", service)
    assert set(_members("dxa-not-done", service)) == {dxa_waiting.id}
    assert dxa_done.id


def test_incomplete_lists_any_missing_audited_field(make_service, add_episode, db):
    from portal.models import Patient

    service = make_service()
    whole = add_episode(service, 500, followup16_done="Yes", followup52_done="No")
    missing_smoker = add_episode(
        service, 500, followup16_done="Yes", followup52_done="No", smoker=None
    )
    missing_postcode = add_episode(service, 500, followup16_done="Yes", followup52_done="No")
    patient = db.session.get(Patient, missing_postcode.patient_id)
    patient.postcode = None
    db.session.commit()
    members = _members("incomplete", service)
    assert set(members) == {missing_smoker.id, missing_postcode.id}
    assert members[missing_smoker.id].missing == 1
    assert whole.id not in members


def test_other_services_episodes_never_appear(make_service, add_episode):
    mine, theirs = make_service("BRD"), make_service("LDS")
    add_episode(theirs, 100, followup16_done=None)
    assert _members("followup16", mine) == {}


def test_worklist_page_sorts_filters_and_pages(signed_in, make_service, add_episode):
    from portal.journey import worklists

    service = make_service()
    client, _, _ = signed_in(service=service)
    episodes = [
        add_episode(service, 100 + i, assessment_date=None) for i in range(worklists.PAGE_SIZE + 5)
    ]
    page1 = client.get("/worklists/awaiting-assessment")
    assert page1.status_code == 200
    html = page1.get_data(as_text=True)
    assert f"{len(episodes)} episodes, page 1 of 2" in html
    oldest = episodes[-1]
    assert html.index(shown(oldest)) < html.index(shown(episodes[-2]))
    page2 = client.get("/worklists/awaiting-assessment?page=2").get_data(as_text=True)
    assert "page 2 of 2" in page2 and shown(episodes[0]) in page2
    newest_first = client.get(
        "/worklists/awaiting-assessment?sort=fracture_date&order=desc"
    ).get_data(as_text=True)
    assert shown(episodes[0]) in newest_first
    by_number = client.post(
        "/worklists/awaiting-assessment", data={"nhs": episodes[7].patient.nhs_number}
    ).get_data(as_text=True)
    assert "1 episode." in by_number
    fragment = client.get(
        "/worklists/awaiting-assessment?status=overdue", headers={"HX-Request": "true"}
    )
    assert fragment.get_data(as_text=True).startswith('<div id="worklist-table">')


def test_counts_on_home_page_and_index(signed_in, make_service, add_episode):
    service = make_service()
    client, _, _ = signed_in(service=service)
    add_episode(service, 100, followup16_done=None)
    add_episode(service, 120, followup16_done=None)
    home = client.get("/").get_data(as_text=True)
    assert "16-week contact" in home
    assert '<span class="portal-count">2</span> episodes, 1 overdue' in home
    index = client.get("/worklists")
    assert index.status_code == 200
    assert client.get("/worklists/no-such-list").status_code == 404


def _statements_sent(db, action, holding: str) -> list[tuple[str, object]]:
    """The statements `action` sends to the database that hold `holding`, with their
    parameters."""
    from sqlalchemy import event

    statements = []

    def keep(conn, cursor, statement, parameters, context, executemany):
        if holding in statement:
            statements.append((statement, parameters))

    event.listen(db.engine, "before_cursor_execute", keep)
    try:
        action()
    finally:
        event.remove(db.engine, "before_cursor_execute", keep)
    return statements


def test_worklists_read_a_service_in_stored_order_not_by_months(db, make_service, add_episode):
    """Query plans: a worklist reads every live episode of its service, so on SQLite it walks
    `ix_episodes_service_id` (rows in stored order), never the partial index by fracture date
    that the KPI pages search (rows out of order: several times slower on a large service).
    PostgreSQL plans by its statistics and gets the plain column."""

    from portal.journey import worklists

    service = make_service()
    add_episode(service, 30)

    def read() -> None:
        worklists.counts(service, TEST_TODAY)
        worklists.page(worklists.WORKLISTS["awaiting-assessment"], service, TEST_TODAY)

    statements = _statements_sent(db, read, "FROM episodes")
    assert len(statements) >= 2
    for statement, parameters in statements:
        if db.engine.dialect.name == "sqlite":
            with db.engine.connect() as conn:
                plan = " / ".join(
                    row[-1]
                    for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
                )
            assert "ix_episodes_live_service_fracture_date" not in plan, plan
            assert "ix_episodes_service_id" in plan, plan
        else:
            assert "episodes.deleted_at IS NULL" in statement
            assert "+episodes" not in statement


def test_each_list_is_counted_through_its_own_partial_index_on_postgresql(
    db, make_service, add_episode
):
    """Migration 0011 (issue 21): on PostgreSQL each list is counted from its own partial index,
    the deceased found through theirs. The planner uses a partial index only when the statement,
    as the portal sends it (with its parameters), implies the index's predicate: a constant bound
    as a parameter instead of written into the SQL would lose it silently. The plan is read with
    every other index of episodes dropped and sequential scans priced out, in a transaction that
    is rolled back (a test table's few rows let the planner take any index)."""
    from sqlalchemy import text

    from portal.journey import worklists
    from portal.models import waiting

    if db.engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL's partial indexes: this database is SQLite")
    service = make_service()
    add_episode(service, 30)
    statements = _statements_sent(db, lambda: worklists.counts(service, TEST_TODAY), "UNION ALL")
    db.session.commit()  # the counts' read ends: dropping needs the tables to itself
    [(statement, parameters)] = statements
    wanted = {waiting.index_name(key) for key in waiting.UNANSWERED} | {"ix_patients_deceased"}
    with db.engine.connect() as conn, conn.begin() as transaction:
        conn.execute(text("SET LOCAL enable_seqscan = off"))
        conn.execute(text("SET LOCAL lock_timeout = '10s'"))
        for name in conn.scalars(
            text(
                "SELECT indexname FROM pg_indexes WHERE tablename IN ('episodes', 'patients') "
                "AND indexname NOT LIKE 'pk_%' AND indexname NOT LIKE 'uq_%'"
            )
        ).all():
            if name not in wanted:
                conn.execute(text(f"DROP INDEX {name}"))
        plan = " / ".join(
            row[0] for row in conn.exec_driver_sql(f"EXPLAIN {statement}", parameters)
        )
        transaction.rollback()
    for name in wanted:
        assert name in plan, (name, plan)
    # After five runs psycopg prepares a statement and PostgreSQL may plan it once for any
    # parameters: only constants written into the SQL still prove a predicate then.
    for term in ("episodes.dxa_status = 'Recommended'", "episodes.followup16_done = ''"):
        assert term in statement, term


def _urls(html: str) -> list[str]:
    import re

    return re.findall(r'(?:href|action|hx-get|hx-post)="([^"]*)"', html)


def test_nhs_number_filter_is_posted_and_never_put_in_a_url(signed_in, make_service, add_episode):
    """The filter by NHS number is posted (URLs reach access logs and browser history); a number
    in a query string is ignored; a filtered list is sorted and paged by posting it again."""
    from portal.journey import worklists

    service = make_service()
    client, _, _ = signed_in(service=service)
    episodes = [
        add_episode(service, 100 + i, assessment_date=None) for i in range(worklists.PAGE_SIZE + 5)
    ]
    number = episodes[3].patient.nhs_number
    everyone = f"{len(episodes)} episodes, page 1 of 2"

    # In a query string the number is ignored: the whole list, and no worklist link carries it
    # on (the sign-in link's `next` gives back the address as it was asked for).
    ignored = client.get(f"/worklists/awaiting-assessment?nhs={number}").get_data(as_text=True)
    assert everyone in ignored
    assert [u for u in _urls(ignored) if u.startswith("/worklists") and number in u] == []

    # The form posts, with its CSRF token; without one the post is refused.
    page = client.get("/worklists/awaiting-assessment").get_data(as_text=True)
    assert 'method="post"' in page and 'name="csrf_token"' in page
    assert (
        client.post("/worklists/awaiting-assessment", data={"nhs": number}, csrf=False).status_code
        == 400
    )

    # A prefix shared by every bench number lists them all, over two pages.
    prefix = number[:4]
    filtered = client.post("/worklists/awaiting-assessment", data={"nhs": prefix})
    html = filtered.get_data(as_text=True)
    assert filtered.status_code == 200 and everyone in html
    assert all(prefix not in url for url in _urls(html))
    assert 'name="goto" value="2"' in html and 'name="resort" value="nhs_number:asc"' in html
    assert f'value="{prefix}"' in html  # the filter stays in its box

    # Paging and sorting a filtered list post the filter again.
    second = client.post(
        "/worklists/awaiting-assessment",
        data={"nhs": prefix, "sort": "fracture_date", "order": "asc", "goto": "2"},
    ).get_data(as_text=True)
    assert "page 2 of 2" in second and shown(episodes[0]) in second
    by_number = client.post(
        "/worklists/awaiting-assessment",
        data={"nhs": prefix, "sort": "fracture_date", "order": "asc", "resort": "nhs_number:desc"},
        headers={"HX-Request": "true"},
    ).get_data(as_text=True)
    assert by_number.startswith('<div id="worklist-table">')
    assert (
        '<input type="hidden" name="sort" value="nhs_number" form="worklist-filters">' in by_number
    )
    numbers = sorted((shown(e) for e in episodes), reverse=True)
    assert by_number.index(numbers[0]) < by_number.index(numbers[1])
    assert numbers[-1] not in by_number  # the lowest is on page 2

    # Only the one patient for the whole number; an unfiltered list keeps its plain links.
    one = client.post("/worklists/awaiting-assessment", data={"nhs": number}).get_data(as_text=True)
    assert "1 episode." in one
    assert 'href="/worklists/awaiting-assessment?sort=nhs_number' in page
