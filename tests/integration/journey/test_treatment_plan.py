"""The treatment plan of an episode (issue 19): a drug started, doses, reviews, a stop and a
switch through the forms (htmx and plain posts), refusals that keep what was typed, denosumab
stopped without a follow-on, the treatment-due worklist across years, the history; and complete
for the audit, which locks the stages until a lead reopens with a reason."""

from __future__ import annotations

import uuid
from datetime import date, timedelta

from werkzeug.datastructures import MultiDict

from tests.conftest import TEST_TODAY

from .conftest import HTMX, date_inputs, nhs_number, section_form, with_values

FRACTURE = TEST_TODAY - timedelta(days=3 * 365)


def _form(**values) -> MultiDict:
    form = MultiDict({"submission_id": str(uuid.uuid4()), "version": ""})
    for key, value in values.items():
        if isinstance(value, date) or value is None:
            form.update(date_inputs(key, value))
        else:
            form[key] = value
    return form


def _start(client, episode, drug="Denosumab", route="Subcutaneous", started=None, **headers):
    started = started or FRACTURE + timedelta(days=100)
    return client.post(
        f"/episodes/{episode.id}/treatment/start",
        data=_form(drug=drug, route=route, started_on=started),
        headers=headers,
    )


def _courses(db, episode):
    from portal.models import TreatmentCourse

    db.session.expire_all()
    return db.session.query(TreatmentCourse).filter_by(episode_id=episode.id).all()


def test_a_drug_started_shows_its_schedule_and_the_worklist_lists_it(editor, register, db):
    client, _user, _service = editor
    episode = register(nhs_number(1), FRACTURE)
    response = _start(client, episode, **HTMX)
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "Denosumab injection" in html and "Drug started" in html
    (course,) = _courses(db, episode)
    assert course.route == "Subcutaneous"
    # Started ~2.7 years ago with no dose since: overdue, on the worklist.
    due = client.get("/worklists/treatment-due").get_data(as_text=True)
    assert "Denosumab injection" in due and "Overdue" in due
    # A dose now brings the next one six months on: off the list.
    response = client.post(
        f"/episodes/{episode.id}/treatment/{course.id}/dose",
        data=_form(given_on=TEST_TODAY - timedelta(days=10)),
        headers=HTMX,
    )
    assert response.status_code == 200, response.get_data(as_text=True)[:2000]
    assert "Denosumab injection" not in client.get("/worklists/treatment-due").get_data(
        as_text=True
    )


def test_a_refused_start_keeps_what_was_typed_without_javascript(editor, register, db):
    client, _user, _service = editor
    episode = register(nhs_number(2), FRACTURE)
    response = _start(client, episode, started=FRACTURE - timedelta(days=5))
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "Date started cannot be before the fracture was diagnosed" in html
    start = section_form(html, "treatment-plan")
    assert start.get("drug") is not None
    assert 'value="Denosumab" selected' in html
    assert _courses(db, episode) == []
    # Strontium ranelate is no longer offered.
    assert 'value="Strontium ranelate"' not in html
    refused = _start(client, episode, drug="Strontium ranelate", route="Oral")
    assert refused.status_code == 422


def test_stopping_denosumab_without_a_follow_on_asks_for_confirmation(editor, register, db):
    client, _user, _service = editor
    episode = register(nhs_number(3), FRACTURE)
    _start(client, episode, started=TEST_TODAY - timedelta(days=90))
    (course,) = _courses(db, episode)
    stop = dict(stopped_on=TEST_TODAY - timedelta(days=1), stop_reason="Patient choice")
    url = f"/episodes/{episode.id}/treatment/{course.id}/stop"
    refused = client.post(url, data=_form(**stop), headers=HTMX)
    assert refused.status_code == 422
    assert "rebound vertebral fractures" in refused.get_data(as_text=True)
    assert _courses(db, episode)[0].stopped_on is None
    saved = client.post(url, data=_form(**stop, no_follow_on="yes"), headers=HTMX)
    assert saved.status_code == 200
    (course,) = _courses(db, episode)
    assert course.no_follow_on_confirmed and course.stop_reason == "Patient choice"
    due = client.get("/worklists/treatment-due").get_data(as_text=True)
    assert "Denosumab stopped without a follow-on drug" in due
    # A follow-on course recorded later takes it off the list.
    _start(client, episode, drug="Zoledronate", route="Intravenous", started=TEST_TODAY)
    due = client.get("/worklists/treatment-due").get_data(as_text=True)
    assert "stopped without a follow-on" not in due


def test_a_switch_stops_the_course_and_starts_the_follow_on(editor, register, db):
    client, _user, _service = editor
    episode = register(nhs_number(4), FRACTURE)
    _start(client, episode, drug="Teriparatide", started=FRACTURE + timedelta(days=60))
    (course,) = _courses(db, episode)
    response = client.post(
        f"/episodes/{episode.id}/treatment/{course.id}/stop",
        data=_form(
            stopped_on=FRACTURE + timedelta(days=790),
            stop_reason="Switched to another drug",
            follow_on_drug="Zoledronate",
            follow_on_route="Intravenous",
        ),
    )
    assert response.status_code == 303
    first, second = sorted(_courses(db, episode), key=lambda c: c.id)
    assert first.follow_on_id == second.id and second.drug == "Zoledronate"
    assert second.started_on == first.stopped_on
    history = client.get(f"/episodes/{episode.id}/history").get_data(as_text=True)
    assert "(treatment plan)" in history and "Teriparatide" in history and "switch" in history


def test_deceased_patients_and_deleted_episodes_never_appear(editor, register, db, signed_in):
    client, _user, service = editor
    dead = register(nhs_number(5), FRACTURE)
    deleted = register(nhs_number(6), FRACTURE)
    for episode in (dead, deleted):
        _start(client, episode)
    dead.patient.date_of_death = TEST_TODAY - timedelta(days=3)
    from portal import clock

    deleted.deleted_at = clock.utcnow()
    db.session.commit()
    assert "Denosumab injection" not in client.get("/worklists/treatment-due").get_data(
        as_text=True
    )


def test_denosumab_comes_first_on_the_worklist(editor, register, db):
    client, _user, _service = editor
    older = register(nhs_number(7), FRACTURE - timedelta(days=2000))
    newer = register(nhs_number(8), FRACTURE)
    _start(client, older, drug="Alendronate", route="Oral", started=older.fracture_date)
    _start(client, newer)
    due = client.get("/worklists/treatment-due").get_data(as_text=True)
    assert due.index("Denosumab injection") < due.index("Review of alendronate")


def test_a_lead_marks_complete_for_the_audit_and_reopens_with_a_reason(signed_in, register, db):
    client, _lead, _service = signed_in(role="lead")
    episode = register(nhs_number(9), FRACTURE)
    page = client.get(f"/episodes/{episode.id}").get_data(as_text=True)
    complete = section_form(page, "audit-completion")
    assert client.post(f"/episodes/{episode.id}/mark-complete", data=complete).status_code == 303
    db.session.expire_all()
    assert episode.audit_complete_at is not None
    page = client.get(f"/episodes/{episode.id}").get_data(as_text=True)
    assert "locked against changes" in page
    # A save that reaches a locked stage (an old tab, the outbox) is refused, typed values kept.
    form = with_values(_form(), smoker="Current")
    refused = client.post(f"/episodes/{episode.id}/stages/assessment", data=form, headers=HTMX)
    assert refused.status_code == 422 and "complete for the audit" in refused.get_data(as_text=True)
    reopen = section_form(page, "audit-completion")
    refused = client.post(f"/episodes/{episode.id}/reopen", data=reopen, headers=HTMX)
    assert refused.status_code == 422 and "Enter the reason" in refused.get_data(as_text=True)
    reopen["reason"] = "Wrong DXA date"
    assert client.post(f"/episodes/{episode.id}/reopen", data=reopen).status_code == 303
    db.session.expire_all()
    assert episode.audit_complete_at is None
    history = client.get(f"/episodes/{episode.id}/history").get_data(as_text=True)
    assert "Wrong DXA date" in history and "reopen for audit" in history


def test_a_clinician_may_not_mark_complete(editor, register):
    client, _user, _service = editor
    episode = register(nhs_number(10), FRACTURE)
    page = client.get(f"/episodes/{episode.id}").get_data(as_text=True)
    assert "Mark complete for the audit" not in page
    form = _form()
    assert client.post(f"/episodes/{episode.id}/mark-complete", data=form).status_code == 403


def test_very_high_risk_advises_anabolic_treatment_first(editor, register, db):
    client, _user, _service = editor
    episode = register(nhs_number(11), FRACTURE)
    form = _form(
        assessment_date=FRACTURE + timedelta(days=20),
        frax_major_percent="32.5",
        frax_hip_percent="11.2",
        frax_with_bmd="Without BMD",
        nogg_risk_category="Very high",
        falls_two_or_more="Yes",
        mobility_before_fracture="Mobile outdoors with one aid",
    )
    response = client.post(f"/episodes/{episode.id}/stages/assessment", data=form)
    assert response.status_code == 303
    db.session.expire_all()
    assert (episode.frax_hip_percent, episode.nogg_risk_category) == (11.2, "Very high")
    assert episode.mobility_before_fracture == "Mobile outdoors with one aid"
    page = client.get(f"/episodes/{episode.id}").get_data(as_text=True)
    assert "Consider anabolic treatment first (NOGG 2022)" in page


def test_new_fractures_at_12_months_need_a_refracture_and_link_the_episode(editor, register, db):
    client, _user, _service = editor
    episode = register(nhs_number(12), FRACTURE)
    later = FRACTURE + timedelta(days=200)
    base = dict(
        followup52_done="Yes",
        followup52_date=FRACTURE + timedelta(days=360),
        refracture_count="1",
        refracture1_site="Spine",
        refracture1_date=later,
        refracture2_date=later,
    )
    url = f"/episodes/{episode.id}/stages/followup52"
    refused = client.post(url, data=_form(refracture="Yes", **base), headers=HTMX)
    assert refused.status_code == 422
    assert "Site of the second new fracture is required with its date" in refused.get_data(
        as_text=True
    )
    base["refracture2_date"] = None
    saved = client.post(url, data=_form(refracture="Yes", **base), headers=HTMX)
    assert saved.status_code == 200, saved.get_data(as_text=True)[:3000]
    db.session.expire_all()
    assert (episode.refracture_count, episode.refracture1_site) == (1, "Spine")
    # The refracture's own episode starts with previous fracture: Yes and is linked.
    from .conftest import registration

    new = registration(episode.patient.nhs_number, later)
    fields = {
        k: v for k, v in new.items(multi=True) if k.startswith(("fracture_", "ident", "admitted"))
    }
    form = _form()
    for key, value in fields.items():
        form.add(key, value)
    response = client.post(f"/patients/{episode.patient_id}/episodes/new", data=form)
    assert response.status_code == 303
    db.session.expire_all()
    refracture = [e for e in episode.patient.episodes if e.id != episode.id][0]
    assert refracture.previous_episode_id == episode.id
    assert refracture.previous_fracture == "Yes"
    page = client.get(f"/episodes/{episode.id}").get_data(as_text=True)
    assert "Refracture episode" in page
