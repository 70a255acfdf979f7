"""The sign-in check of every request: one Core query of the user's row and service ids, checked
against the session's version; the user's services are loaded only when a page lists them, and a
change to the account goes through the ORM user of the same row."""

from __future__ import annotations

import pytest
from sqlalchemy import event, update

from tests.conftest import sign_in
from tests.integration.journey.conftest import nhs_number, registration


@pytest.fixture
def statements(db):
    """The SQL statements the engine runs while the test looks (each a lower-case string)."""
    seen: list[str] = []

    def note(conn, cursor, statement, parameters, context, executemany):
        seen.append(" ".join(statement.lower().split()))

    event.listen(db.engine, "before_cursor_execute", note)
    yield seen
    event.remove(db.engine, "before_cursor_execute", note)


def test_a_signed_in_request_reads_its_user_in_one_query_and_no_services(signed_in, statements):
    client, user, _ = signed_in()
    statements.clear()
    assert client.get("/health").status_code == 200
    of_users = [s for s in statements if " from users" in s]
    assert len(of_users) == 1, statements
    assert "user_services.service_id" in of_users[0]
    assert not [s for s in statements if "from services" in s], statements


def test_the_signed_in_user_carries_role_service_ids_and_services_in_code_order(
    app, make_service, make_user, db, statements
):
    from portal.models import Service
    from portal.security import SignedInUser, _load_user

    later, earlier = make_service(code="ZZZ"), make_service(code="AAA")
    user = make_user(role="lead", services=[later, earlier])
    user_id, email, service_ids = user.id, user.email, {later.id, earlier.id}
    db.session.expunge_all()  # nothing of theirs in the identity map
    statements.clear()

    signed = _load_user(f"{user_id}:1")

    assert isinstance(signed, SignedInUser)
    assert (signed.id, signed.role, signed.email) == (user_id, "lead", email)
    assert signed.service_ids == service_ids
    assert signed.get_id() == f"{user_id}:1" and signed.is_active and signed.is_authenticated
    assert len(statements) == 1 and "from services" not in statements[0]
    services = signed.services
    assert [s.code for s in services] == ["AAA", "ZZZ"]
    assert all(isinstance(s, Service) for s in services)
    assert signed.services is services  # loaded once a request
    assert len(statements) == 2


def test_a_user_without_services_has_none(app, make_user, db):
    from portal.security import _load_user

    admin = make_user(role="admin")
    signed = _load_user(f"{admin.id}:1")
    assert signed.service_ids == frozenset() and signed.services == []


@pytest.mark.parametrize("session_id", ["{id}:2", "{id}", "{id}:x", "0:1"])
def test_a_session_of_another_version_or_no_user_is_refused(app, make_user, session_id):
    from portal.security import _load_user

    user = make_user()
    assert _load_user(session_id.format(id=user.id)) is None


def test_an_inactive_user_is_refused(app, make_user):
    from portal.security import _load_user

    user = make_user(active=False)
    assert _load_user(f"{user.id}:1") is None


def test_a_new_service_membership_counts_from_the_next_request(
    app, client, make_service, make_user, db
):
    """Nothing of the user is kept between requests: an admin's change shows at once."""
    from datetime import date

    from portal.models import Episode, User

    own, other = make_service(code="OWN"), make_service(code="OTH")
    nurse = make_user(role="clinician", services=[other])
    sign_in(client, nurse)
    fracture = date.today().replace(day=1)
    assert (
        client.post("/patients/new", data=registration(nhs_number(71), fracture)).status_code == 303
    )
    episode_id = db.session.query(Episode.id).scalar()

    user = make_user(role="clinician", services=[own])
    client = app.test_client()
    sign_in(client, user)
    assert client.get(f"/episodes/{episode_id}").status_code == 404

    db.session.get(User, user.id).services.append(db.session.get(type(other), other.id))
    db.session.commit()
    page = client.get(f"/episodes/{episode_id}")
    assert page.status_code == 200
    assert "OTH - OTH Fracture Liaison Service" in page.get_data(as_text=True)  # switched to it


def test_account_changes_reach_the_users_row(signed_in, db):
    """Signing out goes through the ORM user of the signed-in row: its sessions end."""
    from portal.models import User

    client, user, _ = signed_in()
    stolen = client.get_cookie("session").value
    assert client.post("/auth/sign-out").status_code == 302
    db.session.expire_all()
    assert db.session.get(User, user.id).session_version == 2
    client.set_cookie("session", stolen)
    assert client.get("/").status_code == 302


def test_a_raised_session_version_ends_the_session_at_its_next_request(signed_in, db):
    from portal.models import User

    client, user, _ = signed_in()
    assert client.get("/").status_code == 200
    db.session.execute(update(User).where(User.id == user.id).values(session_version=2))
    db.session.commit()
    assert client.get("/").status_code == 302


def test_only_a_user_of_several_services_gets_the_switch_and_their_list(
    app, make_service, make_user, statements
):
    """A page lists the user's services only when there is a choice to make."""
    first, second = make_service(code="BBB"), make_service(code="AAA")
    one = app.test_client()
    sign_in(one, make_user(services=[first]))
    one.get("/")  # the first page after signing in chooses the service (the first in code order)
    statements.clear()
    page = one.get("/").get_data(as_text=True)
    assert 'id="service-switch"' not in page
    assert "BBB" in page  # the current service, in the header
    assert not [s for s in statements if "from services where services.id in" in s], statements

    both = app.test_client()
    sign_in(both, make_user(services=[first, second]))
    page = both.get("/").get_data(as_text=True)
    switch = page[page.index('id="service-switch"') :]
    assert switch.index("AAA - ") < switch.index("BBB - ")
    assert f'value="{second.id}" selected' in switch  # the first in code order
