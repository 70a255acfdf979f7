"""The sign-in check of every request: the user's row, checked against the session's version, read
again at every request, so a change to the account counts from the next one."""

from __future__ import annotations

import pytest
from sqlalchemy import update

from tests.conftest import sign_in
from tests.integration.journey.conftest import nhs_number, registration


def _load(app, user_id: int, session_id: str, *, recorded: bool = True):
    """The sign-in check of one request whose cookie names `session_id` and, unless
    `recorded` is False, carries the token of an open session record of the user."""
    from flask import session

    from portal.accounts import sessions
    from portal.audit.actor import Actor
    from portal.extensions import db
    from portal.models import User
    from portal.security import SESSION_TOKEN, _load_user

    with app.test_request_context("/"):
        user = db.session.get(User, user_id) if recorded else None
        if user is not None:
            session[SESSION_TOKEN] = sessions.start(Actor.visitor("127.0.0.1"), user, None)
            db.session.commit()
            db.session.expunge_all()  # nothing of theirs in the identity map
        return _load_user(session_id)


def test_the_signed_in_user_carries_role_service_ids_and_services_in_code_order(
    app, make_service, make_user, db
):
    later, earlier = make_service(code="ZZZ"), make_service(code="AAA")
    user = make_user(role="lead", services=[later, earlier])
    user_id, email, service_ids = user.id, user.email, {later.id, earlier.id}
    db.session.expunge_all()

    signed = _load(app, user_id, f"{user_id}:1")

    assert (signed.id, signed.role, signed.email) == (user_id, "lead", email)
    assert signed.service_ids == service_ids
    assert signed.get_id() == f"{user_id}:1" and signed.is_active and signed.is_authenticated
    assert [s.code for s in signed.services] == ["AAA", "ZZZ"]


def test_a_user_without_services_has_none(app, make_user, db):
    admin = make_user(role="admin")
    signed = _load(app, admin.id, f"{admin.id}:1")
    assert signed.service_ids == set() and signed.services == []


@pytest.mark.parametrize("session_id", ["{id}:2", "{id}", "{id}:x", "0:1"])
def test_a_session_of_another_version_or_no_user_is_refused(app, make_user, session_id):
    user = make_user()
    assert _load(app, user.id, session_id.format(id=user.id)) is None


def test_an_inactive_user_is_refused(app, make_user):
    user = make_user(active=False)
    assert _load(app, user.id, f"{user.id}:1") is None


def test_a_session_without_an_open_record_is_refused(app, make_user, db):
    from portal.accounts import sessions
    from portal.audit.actor import Actor
    from portal.models import User, UserSession

    user_id = make_user().id
    assert _load(app, user_id, f"{user_id}:1", recorded=False) is None
    assert _load(app, user_id, f"{user_id}:1") is not None
    sessions.end_every(Actor.command_line(), db.session.get(User, user_id))
    db.session.commit()
    assert db.session.query(UserSession).filter(UserSession.ended_at.is_(None)).count() == 0


def test_a_new_service_membership_counts_from_the_next_request(
    app, client, make_service, make_user, db
):
    """Nothing of the user is kept between requests: an admin's change shows at once."""
    from datetime import timedelta

    from portal import clock
    from portal.models import Episode, User

    own, other = make_service(code="OWN"), make_service(code="OTH")
    nurse = make_user(role="clinician", services=[other])
    sign_in(client, nurse)
    fracture = clock.today() - timedelta(days=40)
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
    """Signing out ends every session of the user: a copied cookie stops working."""
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
    app, make_service, make_user
):
    """A page lists the user's services only when there is a choice to make."""
    first, second = make_service(code="BBB"), make_service(code="AAA")
    one = app.test_client()
    sign_in(one, make_user(services=[first]))
    one.get("/")  # the first page after signing in chooses the service (the first in code order)
    page = one.get("/").get_data(as_text=True)
    assert 'id="service-switch"' not in page
    assert "BBB" in page  # the current service, in the header

    both = app.test_client()
    sign_in(both, make_user(services=[first, second]))
    page = both.get("/").get_data(as_text=True)
    switch = page[page.index('id="service-switch"') :]
    assert switch.index("AAA - ") < switch.index("BBB - ")
    assert f'value="{second.id}" selected' in switch  # the first in code order
