"""Issue 18: worklists to work from (names, phones, what is due by when, the last attempt, due in
the next 14 days, print view, CSV for leads), contact attempts and the rule of a follow-up not
done, and unusual dates saved only once confirmed."""

from __future__ import annotations

import csv
import io
import re
from datetime import date, timedelta

import pytest
from werkzeug.datastructures import MultiDict

from portal import clock
from tests.conftest import TEST_TODAY

from .conftest import HTMX, date_inputs, nhs_number
from .test_stages import post_stage, stage_answers


@pytest.fixture
def waiting(db):
    """An episode of `service` waiting on the 16-week contact, `days_ago` after its fracture."""
    from portal.models import Episode, Patient

    counter = iter(range(500, 9000))

    def make(service, days_ago, **patient):
        fracture = TEST_TODAY - timedelta(days=days_ago)
        person = Patient(
            service_id=service.id,
            nhs_number=nhs_number(next(counter)),
            date_of_birth=date(1946, 2, 1),
            sex="Female",
            **patient,
        )
        db.session.add(person)
        db.session.flush()
        episode = Episode(
            service_id=service.id,
            patient_id=person.id,
            fracture_date=fracture,
            fracture_sites="Wrist",
            identification_date=fracture,
            assessment_date=fracture,
            bone_therapy="Alendronate",
        )
        db.session.add(episode)
        db.session.commit()
        return episode

    return make


def _attempt(client, episode, outcome="No answer", purpose="followup16", **extra):
    form = MultiDict(
        {
            "purpose": purpose,
            "method": "Telephone",
            "outcome": outcome,
            "note": "Left no message",
            **date_inputs("made_on", TEST_TODAY),
            "submission_id": f"attempt-{episode.id}-{clock.utcnow().timestamp()}",
            **extra,
        }
    )
    return client.post(f"/episodes/{episode.id}/contact-attempts", data=form)


def _listed(client, key="followup16", **query) -> str:
    return client.get(f"/worklists/{key}", query_string=query).get_data(as_text=True)


def test_a_row_shows_who_to_call_what_is_due_and_the_last_attempt(editor, waiting, db):
    from portal.models import AuditEvent

    client, _, service = editor
    episode = waiting(service, 100, given_name="Ada", family_name="Lovelace", phone="01632 960001")
    assert _attempt(client, episode).status_code == 303
    page = _listed(client)
    assert "Ada Lovelace" in page and "01632 960001" in page
    born = date(1946, 2, 1)
    age = TEST_TODAY.year - born.year - ((TEST_TODAY.month, TEST_TODAY.day) < (2, 1))
    assert f">{age}<" in page  # age today
    due_by = episode.fracture_date + timedelta(days=112)
    assert f"16-week contact by {due_by.day} {due_by.strftime('%B %Y')}" in page
    assert f"{TEST_TODAY.day} {TEST_TODAY.strftime('%B %Y')}: telephone, no answer" in page
    # An attempt leaves the episode on the list; views of the list are audited.
    assert db.session.query(AuditEvent).filter_by(action="view_list").count() >= 1


def test_due_in_the_next_14_days(editor, waiting):
    client, _, service = editor
    soon = waiting(service, 100, family_name="Soon")  # last day 112: in 12 days
    later = waiting(service, 90, family_name="Later")  # last day in 22 days
    page = _listed(client, "due-soon")
    assert "Soon" in page and "Later" not in page
    filtered = _listed(client, status="soon")
    assert "Soon" in filtered and "Later" not in filtered
    assert soon.id and later.id


def test_a_name_filter_is_posted_and_never_reaches_a_url(editor, waiting):
    client, _, service = editor
    waiting(service, 100, family_name="Brontë")
    waiting(service, 100, family_name="Austen")
    response = client.post("/worklists/followup16", data={"name": "bronte"})
    page = response.get_data(as_text=True)
    assert "1 episode." in page and "Austen" not in page
    urls = re.findall(r'(?:href|action|hx-post)="([^"]*)"', page)
    assert urls and all("bronte" not in url.lower() for url in urls)
    assert "bronte" not in _listed(client, name="bronte").lower() or "2 episodes." in _listed(
        client, name="bronte"
    )


def test_print_view_and_csv_download(signed_in, waiting, db):
    from portal.models import AuditEvent

    client, _, service = signed_in(role="lead")
    waiting(service, 100, given_name="=cmd|' /C calc'!A0", family_name="Hopper")
    printed = client.get("/worklists/followup16/print")
    assert printed.status_code == 200 and "Hopper" in printed.get_data(as_text=True)
    download = client.get("/worklists/followup16/download")
    assert download.status_code == 200 and download.mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(download.get_data(as_text=True))))
    assert rows[0][:3] == ["nhs_number", "given_name", "family_name"]
    assert rows[1][1].startswith("'=") and rows[1][2] == "Hopper"
    assert db.session.query(AuditEvent).filter_by(action="export").count() == 1
    filtered = client.post("/worklists/followup16/download", data={"name": "hopper"})
    assert len(list(csv.reader(io.StringIO(filtered.get_data(as_text=True))))) == 2


def test_a_clinician_cannot_download_a_list(editor, waiting):
    client, _, service = editor
    waiting(service, 100)
    assert client.get("/worklists/followup16/download").status_code == 403
    assert "Download this list" not in _listed(client)


def test_an_attempt_is_listed_with_who_and_when_and_a_refused_one_keeps_what_was_typed(
    editor, waiting, db
):
    from portal.models import AuditEvent, ContactAttempt

    client, user, service = editor
    episode = waiting(service, 100)
    assert _attempt(client, episode, outcome="Wrong number").status_code == 303
    page = client.get(f"/episodes/{episode.id}").get_data(as_text=True)
    assert "Wrong number" in page and user.display_name in page
    event = db.session.query(AuditEvent).filter_by(entity_type="contact_attempt").one()
    assert event.changes["outcome"] == [None, "Wrong number"] and event.user_id == user.id
    refused = _attempt(client, episode, outcome="", note="Rang twice")
    assert refused.status_code == 422
    html = refused.get_data(as_text=True)
    assert 'id="outcome-error"' in html and "Rang twice" in html
    assert db.session.query(ContactAttempt).count() == 1
    history = client.get(f"/episodes/{episode.id}/history").get_data(as_text=True)
    assert "Wrong number" in history


def _not_done(reason=""):
    form = stage_answers("followup16")
    form = MultiDict(
        {"followup16_done": "No", "followup16_not_done_reason": reason, "therapy16": ""}
    )
    return form


def test_not_done_before_the_window_closes_says_to_record_an_attempt(editor, waiting, db):
    client, _, service = editor
    episode = waiting(service, 100)
    refused = post_stage(client, episode, "followup16", _not_done("Patient declined"))
    assert refused.status_code == 422
    assert "record a contact attempt instead" in refused.get_data(as_text=True)
    assert "16-week contact" in _listed(client)


def test_lost_to_follow_up_after_the_services_number_of_attempts(editor, waiting, db):
    client, _, service = editor
    episode = waiting(service, 100, family_name="Franklin")
    for _ in range(2):
        _attempt(client, episode)
    early = post_stage(client, episode, "followup16", _not_done("Lost to follow-up"))
    assert early.status_code == 422 and "needs 3 unanswered" in early.get_data(as_text=True)
    _attempt(client, episode)
    assert "Franklin" in _listed(client)  # attempts never take a patient off the list
    db.session.refresh(episode)
    saved = post_stage(client, episode, "followup16", _not_done("Lost to follow-up"))
    assert saved.status_code == 200, saved.get_data(as_text=True)[:2000]
    assert "Franklin" not in _listed(client)


def test_a_lead_changes_the_number_of_attempts(signed_in, waiting, db):
    client, _, service = signed_in(role="lead")
    form = {"attempts_before_lost": "1", "letter_telephone": "01632 960000"}
    assert client.post("/service/settings", data=form).status_code == 303
    db.session.refresh(service)
    assert service.attempts_before_lost == 1
    episode = waiting(service, 100)
    _attempt(client, episode)
    saved = post_stage(client, episode, "followup16", _not_done("Lost to follow-up"))
    assert saved.status_code == 200
    refused = client.post("/service/settings", data={"attempts_before_lost": "0"})
    assert refused.status_code == 422 and 'value="0"' in refused.get_data(as_text=True)


def test_not_done_after_the_window_closed_needs_a_reason(editor, waiting):
    client, _, service = editor
    episode = waiting(service, 120)
    no_reason = post_stage(client, episode, "followup16", _not_done(""))
    assert no_reason.status_code == 422
    assert "Choose why the contact was not done" in no_reason.get_data(as_text=True)
    saved = post_stage(client, episode, "followup16", _not_done("Too unwell"))
    assert saved.status_code == 200


def test_an_unusual_date_is_saved_only_once_confirmed_and_the_history_keeps_it(editor, waiting, db):
    client, _, service = editor
    episode = waiting(service, 200)
    form = stage_answers("followup16", episode.fracture_date)
    form.setlist("followup16_date-day", [str((episode.fracture_date + timedelta(days=40)).day)])
    form.setlist("followup16_date-month", [str((episode.fracture_date + timedelta(days=40)).month)])
    form.setlist("followup16_date-year", [str((episode.fracture_date + timedelta(days=40)).year)])
    warned = post_stage(client, episode, "followup16", form)
    assert warned.status_code == 422
    page = warned.get_data(as_text=True)
    assert "day 40 after the fracture" in page and 'name="confirm_dates"' in page
    assert "data-offline-reason" in page  # an outbox save waits, needing attention
    db.session.refresh(episode)
    assert episode.followup16_done is None
    form["confirm_dates"] = "followup16_date"
    saved = post_stage(client, episode, "followup16", form)
    assert saved.status_code == 200, saved.get_data(as_text=True)[:2000]
    history = client.get(f"/episodes/{episode.id}/history").get_data(as_text=True)
    assert "Unusual date confirmed" in history and "day 40 after the fracture" in history


@pytest.mark.parametrize(
    "stage, changes, words",
    [
        ("assessment", {"dxa_date": 400}, "more than a year after the fracture"),
        ("identification", {"identification_date": 150}, "after the FLS assessment"),
    ],
)
def test_other_unusual_dates_warn(editor, waiting, stage, changes, words):
    client, _, service = editor
    episode = waiting(service, 500)
    form = stage_answers(stage, episode.fracture_date)
    for field, days in changes.items():
        for key, value in date_inputs(field, episode.fracture_date + timedelta(days=days)).items():
            form.setlist(key, [value])
    if stage == "assessment":
        form.setlist("assessment_date-day", [str(episode.fracture_date.day)])
        form.setlist("assessment_date-month", [str(episode.fracture_date.month)])
        form.setlist("assessment_date-year", [str(episode.fracture_date.year)])
    response = post_stage(client, episode, stage, form)
    assert response.status_code == 422 and words in response.get_data(as_text=True)
    assert HTMX
