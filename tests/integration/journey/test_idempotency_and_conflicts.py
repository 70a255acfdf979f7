"""Server side of offline saving (spec/offline.md): idempotent on submission_id, versions merged
field by field, 409 with both values when two people changed the same field."""

from __future__ import annotations

import uuid
from datetime import timedelta

from werkzeug.datastructures import MultiDict

from portal.audit.actor import Actor
from tests.conftest import TEST_TODAY

from .conftest import HTMX, nhs_number, registration, section_form, two_renders
from .test_stages import post_stage, stage_answers

F = TEST_TODAY - timedelta(days=200)


def _counts(db):
    from portal.models import AuditEvent, Episode, Patient, Submission

    return (
        db.session.query(Patient).count(),
        db.session.query(Episode).count(),
        db.session.query(AuditEvent).filter(AuditEvent.action.in_(["create", "update"])).count(),
        db.session.query(Submission).count(),
    )


def test_registration_replayed_ten_times_saves_once(editor, db):
    from portal.models import Service

    client, _, service = editor
    form = registration(nhs_number(30), F)
    answers = [client.post("/patients/new", data=form, headers=HTMX) for _ in range(10)]
    assert {a.status_code for a in answers} == {200}
    assert len({a.headers["HX-Redirect"] for a in answers}) == 1
    assert _counts(db) == (1, 1, 2, 1)
    db.session.expire_all()
    assert db.session.get(Service, service.id).data_version == 2
    # The plain post of the same submission goes to the first outcome too.
    again = client.post("/patients/new", data=form)
    assert (
        again.status_code == 303 and again.headers["Location"] == answers[0].headers["HX-Redirect"]
    )
    assert _counts(db) == (1, 1, 2, 1)


def test_idempotency_key_header_is_used_and_scoped_to_the_user(editor, make_user, db):
    from tests.conftest import sign_in

    client, _, service = editor
    key = str(uuid.uuid4())
    form = registration(nhs_number(31), F)
    form.pop("submission_id")
    first = client.post("/patients/new", data=form, headers={**HTMX, "Idempotency-Key": key})
    second = client.post("/patients/new", data=form, headers={**HTMX, "Idempotency-Key": key})
    assert first.status_code == second.status_code == 200
    assert _counts(db)[:2] == (1, 1)
    # Another user's submission with the same id is theirs: it is not a replay of the first.
    other = make_user(role="clinician", services=[service])
    client.post("/auth/sign-out")
    sign_in(client, other)
    form2 = registration(nhs_number(32), F)
    form2.pop("submission_id")
    third = client.post("/patients/new", data=form2, headers={**HTMX, "Idempotency-Key": key})
    assert third.status_code == 200
    assert _counts(db)[:2] == (2, 2)


def test_same_id_with_different_content_is_refused_422(editor, register, db):
    client, _, _ = editor
    episode = register(nhs_number(33), F)
    form = stage_answers("treatment", F)
    form["submission_id"] = sid = str(uuid.uuid4())
    assert post_stage(client, episode, "treatment", form).status_code == 200
    changed = stage_answers("treatment", F)
    changed["calcium_vitd"] = "No"
    changed["submission_id"] = sid
    response = post_stage(client, episode, "treatment", changed, version=1)
    assert response.status_code == 422
    assert "already saved once with different answers" in response.get_data(as_text=True)
    db.session.refresh(episode)
    assert episode.calcium_vitd == "Yes"


def test_a_stage_replay_writes_nothing_and_answers_the_section(editor, register, db):
    from portal.models import AuditEvent

    client, _, _ = editor
    episode = register(nhs_number(34), F)
    form = stage_answers("assessment", F)
    form["submission_id"] = str(uuid.uuid4())
    form["version"] = "1"
    first = post_stage(client, episode, "assessment", form)
    events = db.session.query(AuditEvent).count()
    for _ in range(3):
        again = post_stage(client, episode, "assessment", form)
        assert again.status_code == 200 and 'id="stage-assessment"' in again.get_data(as_text=True)
    assert first.status_code == 200
    assert db.session.query(AuditEvent).count() == events
    db.session.refresh(episode)
    assert episode.version == 2


def test_a_refused_save_is_not_kept_so_the_corrected_form_can_use_the_same_id(editor, register, db):
    from portal.models import Submission

    client, _, _ = editor
    episode = register(nhs_number(35), F)
    sid = str(uuid.uuid4())
    bad = stage_answers("assessment", F)
    bad["height_cm"] = "300"
    bad["submission_id"] = sid
    assert post_stage(client, episode, "assessment", bad).status_code == 422
    assert db.session.query(Submission).filter_by(submission_id=sid).count() == 0
    good = stage_answers("assessment", F)
    good["submission_id"] = sid
    assert post_stage(client, episode, "assessment", good).status_code == 200
    assert db.session.query(Submission).filter_by(submission_id=sid).count() == 1


def test_fields_only_one_side_changed_merge_without_asking(editor, register, db):
    client, _, _ = editor
    episode = register(nhs_number(36), F)
    mine, theirs = two_renders(client, f"/episodes/{episode.id}", "stage-assessment")  # version 1
    theirs["smoker"] = "Never"
    assert (
        client.post(
            f"/episodes/{episode.id}/stages/assessment", data=theirs, headers=HTMX
        ).status_code
        == 200
    )
    mine["height_cm"] = "170"
    response = client.post(f"/episodes/{episode.id}/stages/assessment", data=mine, headers=HTMX)
    assert response.status_code == 200, response.get_data(as_text=True)[:2000]
    db.session.refresh(episode)
    assert episode.smoker == "Never" and episode.height_cm == 170
    assert episode.version == 3


def test_both_sides_changed_one_field_409_then_choose(editor, register, db):
    client, _, _ = editor
    episode = register(nhs_number(37), F)
    mine, theirs = two_renders(client, f"/episodes/{episode.id}", "stage-treatment")
    theirs["calcium_vitd"] = "No"
    theirs.setlist("bone_therapy", ["Denosumab"])
    assert (
        client.post(
            f"/episodes/{episode.id}/stages/treatment", data=theirs, headers=HTMX
        ).status_code
        == 200
    )
    mine["calcium_vitd"] = "Yes"
    mine.setlist("bone_therapy", ["Denosumab"])  # the same change as theirs: no conflict
    response = client.post(f"/episodes/{episode.id}/stages/treatment", data=mine, headers=HTMX)
    assert response.status_code == 409
    view = response.get_data(as_text=True)
    assert "Yours: Yes" in view and "Theirs (saved meanwhile): No" in view
    assert "choose::bone_therapy" not in view  # both made the same change: nothing to choose
    db.session.refresh(episode)
    assert episode.calcium_vitd == "No"
    # The conflict form re-submits with the current version; choosing "yours" saves it.
    choice = section_form(view, "stage-treatment")
    assert choice["version"] == str(episode.version)
    choice["choose::calcium_vitd"] = "yours"
    saved = client.post(f"/episodes/{episode.id}/stages/treatment", data=choice, headers=HTMX)
    assert saved.status_code == 200, saved.get_data(as_text=True)[:2000]
    db.session.refresh(episode)
    assert episode.calcium_vitd == "Yes" and episode.bone_therapy == "Denosumab"


def test_conflict_as_plain_post_shows_the_conflict_on_the_page(editor, register, db):
    client, _, _ = editor
    episode = register(nhs_number(38), F)
    mine, theirs = two_renders(client, f"/episodes/{episode.id}", "stage-identification")
    theirs["admitted"] = "No"
    assert (
        client.post(f"/episodes/{episode.id}/stages/identification", data=theirs).status_code == 303
    )
    mine["admitted"] = "Not known"
    response = client.post(f"/episodes/{episode.id}/stages/identification", data=mine)
    assert response.status_code == 409
    html = response.get_data(as_text=True)
    assert "<html" in html and "Someone else changed this stage" in html
    assert "Yours: Not known" in html and "Theirs (saved meanwhile): No" in html


def test_patient_details_conflict_and_merge(editor, register, db):
    client, _, _ = editor
    episode = register(nhs_number(39), F)
    patient = episode.patient
    mine, theirs = two_renders(client, f"/patients/{patient.id}", "patient-details")
    theirs["postcode"] = "LS1 4AP"
    assert client.post(f"/patients/{patient.id}", data=theirs, headers=HTMX).status_code == 200
    mine["care_home_resident"] = "Yes"
    assert client.post(f"/patients/{patient.id}", data=mine, headers=HTMX).status_code == 200
    db.session.refresh(patient)
    assert patient.postcode == "LS1 4AP" and patient.care_home_resident == "Yes"
    stale = MultiDict(mine)
    stale["submission_id"] = str(uuid.uuid4())
    stale["postcode"] = "M1 1AE"
    response = client.post(f"/patients/{patient.id}", data=stale, headers=HTMX)
    assert response.status_code == 409
    assert "Yours: M1 1AE" in response.get_data(as_text=True)


def test_changes_recorded_without_a_version_make_every_difference_a_conflict(editor, register, db):
    """A change that did not record its version (e.g. written by another tool) cannot be told
    apart: nothing is overwritten silently."""
    from portal.audit import events as audit

    client, _, _ = editor
    episode = register(nhs_number(40), F)
    url = f"/episodes/{episode.id}"
    page = client.get(url).get_data(as_text=True)
    mine = section_form(page, "stage-treatment")
    changes = audit.apply_changes(episode, {"calcium_vitd": "No"})
    db.session.flush()
    audit.record(Actor.command_line(), "update", episode, changes)
    db.session.commit()
    mine["calcium_vitd"] = "Yes"
    assert (
        client.post(f"/episodes/{episode.id}/stages/treatment", data=mine, headers=HTMX).status_code
        == 409
    )


def test_session_ended_htmx_save_gets_401_json(client, db, make_service):
    service = make_service()
    response = client.post("/patients/new", data=registration(nhs_number(41), F), headers=HTMX)
    assert response.status_code in (400, 401)
    # With a valid CSRF token but no session the answer is 401 JSON for the offline script.
    response = client.post("/episodes/1/stages/treatment", data={}, headers=HTMX)
    assert response.status_code == 401
    assert response.get_json()["error"] == "signed_out"
    assert service.id


def _spy(monkeypatch, module, name):
    """Count the calls of module.name (the real function still runs)."""
    real = getattr(module, name)
    calls = []

    def spy(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, spy)
    return calls


def test_a_copy_of_a_saved_stage_meets_the_unique_constraint_and_answers_the_first_outcome(
    editor, register, db, monkeypatch
):
    """A ready save keeps its submission before it writes anything else: a copy of one already
    saved meets the unique constraint with that first write, is rolled back whole, and answers the
    first outcome."""
    from portal.journey import submissions
    from portal.models import AuditEvent, Submission

    client, _, _ = editor
    episode = register(nhs_number(42), F)
    form = stage_answers("treatment", F)
    form["submission_id"] = str(uuid.uuid4())
    form["version"] = "1"
    assert post_stage(client, episode, "treatment", form).status_code == 200
    events = db.session.query(AuditEvent).count()

    kept = _spy(monkeypatch, submissions, "remember")
    lookups = _spy(monkeypatch, submissions, "first_outcome")
    again = post_stage(client, episode, "treatment", form)
    assert again.status_code == 200 and "Treatment recommendation saved." in again.get_data(
        as_text=True
    )
    assert len(kept) == 1 and len(lookups) == 1  # the insert met the constraint, then the lookup
    db.session.expire_all()
    assert db.session.query(AuditEvent).count() == events
    assert db.session.query(Submission).count() == 2  # registration and this stage


def test_a_replay_planned_before_its_original_committed_answers_the_original(
    editor, db, monkeypatch
):
    """The replay was planned while the original was not yet committed (so the patient did not
    exist yet); its submission then meets the original's in the unique constraint. It answers
    the original's outcome, writes nothing, and is not refused as 'already registered'."""
    from portal.journey import plans as journey
    from portal.journey import submissions

    client, _, _ = editor
    form = registration(nhs_number(43), F)
    real = journey.plan_registration
    plans = []

    def planned_early(*args):
        plans.append(real(*args))
        return plans[0]  # the replay's plan is the one made before the patient existed

    monkeypatch.setattr(journey, "plan_registration", planned_early)
    first = client.post("/patients/new", data=form, headers=HTMX)
    assert first.status_code == 200
    lookups = _spy(monkeypatch, submissions, "first_outcome")
    again = client.post("/patients/new", data=form, headers=HTMX)
    assert plans[1].outcome == "existing"  # planned now, it would have found the patient
    assert again.status_code == 200
    assert again.headers["HX-Redirect"] == first.headers["HX-Redirect"]
    assert len(lookups) == 1
    assert _counts(db)[:2] == (1, 1)


def test_a_stage_replay_that_read_the_episode_before_its_original_committed_shows_it_saved(
    editor, register, db, monkeypatch
):
    """A replay planned on the episode as it was before its original committed meets the
    original in the unique constraint, is rolled back, and answers the section as the original
    saved it: its values and its version, never the record it planned on."""
    import re

    from portal.journey import plans as journey

    client, _, _ = editor
    episode = register(nhs_number(47), F)
    real = journey.plan_stage
    plans = []

    def planned_early(*args, **kwargs):
        plans.append(real(*args, **kwargs))
        return plans[0]  # the replay's plan is the one made before the original was saved

    monkeypatch.setattr(journey, "plan_stage", planned_early)
    form = stage_answers("treatment", F)
    form["submission_id"], form["version"], form["calcium_vitd"] = str(uuid.uuid4()), "1", "No"
    first = post_stage(client, episode, "treatment", form)
    assert first.status_code == 200 and plans[0].outcome == "ready"
    again = post_stage(client, episode, "treatment", form)
    assert again.status_code == 200
    section = again.get_data(as_text=True)
    assert re.search(r'name="version" value="2"', section)
    assert re.search(r'name="calcium_vitd"[^>]*value="No" checked', section)
    assert "Treatment recommendation saved." in section


def test_a_replay_planned_after_its_original_committed_answers_the_original(
    editor, db, monkeypatch
):
    """Planned once the original committed, the replay finds the patient registered; before
    answering 'already registered' it looks its submission up and answers the original."""
    from portal.journey import submissions

    client, _, _ = editor
    form = registration(nhs_number(44), F)
    first = client.post("/patients/new", data=form, headers=HTMX)
    assert first.status_code == 200
    kept = _spy(monkeypatch, submissions, "remember")
    again = client.post("/patients/new", data=form, headers=HTMX)
    assert again.status_code == 200
    assert again.headers["HX-Redirect"] == first.headers["HX-Redirect"]
    assert kept == []  # nothing was about to be written
    assert _counts(db)[:2] == (1, 1)


def test_a_form_opened_before_an_import_merges_with_what_the_import_changed(
    editor, register, db, runner, tmp_path
):
    """The import records `_version` like a form save, so only a field both changed conflicts."""
    client, _, service = editor
    nhs = nhs_number(38)
    episode = register(nhs, F)
    mine, _ = two_renders(client, f"/episodes/{episode.id}", "stage-assessment")
    csv = tmp_path / "update.csv"
    csv.write_text(f"nhs_number,fracture_date,smoker\n{nhs},{F.isoformat()},Never\n")
    result = runner.invoke(args=["records", "import", str(csv), "--service", service.code])
    assert result.exit_code == 0, result.output + result.stderr
    assert "updated 1" in result.stdout
    mine["height_cm"] = "170"
    response = client.post(f"/episodes/{episode.id}/stages/assessment", data=mine, headers=HTMX)
    assert response.status_code == 200, response.get_data(as_text=True)[:2000]
    db.session.refresh(episode)
    assert episode.smoker == "Never" and episode.height_cm == 170


def _commit_another_save(db, episode_id: int, changes: dict, *, audited: bool) -> None:
    """Another user's save of the episode, committed on a connection of its own."""
    import json

    from sqlalchemy import text

    with db.engine.begin() as other:
        version = other.execute(
            text("SELECT version FROM episodes WHERE id = :id"), {"id": episode_id}
        ).scalar_one()
        sets = ", ".join(f"{name} = :{name}" for name in changes)
        other.execute(
            text(f"UPDATE episodes SET {sets}, version = version + 1 WHERE id = :id"),
            {**changes, "id": episode_id},
        )
        if audited:
            trail = {name: [None, value] for name, value in changes.items()}
            other.execute(
                text(
                    "INSERT INTO audit_events (at, action, entity_type, entity_id, changes) "
                    "VALUES (CURRENT_TIMESTAMP, 'update', 'episode', :id, :changes)"
                ),
                {
                    "id": episode_id,
                    "changes": json.dumps({**trail, "_version": [version, version + 1]}),
                },
            )


def _lose_the_version_race(monkeypatch, db, episode_id: int, changes: dict, *, audited: bool):
    """Make the next stage save meet another save committed between its plan and its write."""
    from portal.journey import plans as journey

    real = journey.plan_stage
    plans = []

    def plan_then_lose(*args, **kwargs):
        plan = real(*args, **kwargs)
        plans.append(plan.outcome)
        if len(plans) == 1:
            _commit_another_save(db, episode_id, changes, audited=audited)
        return plan

    monkeypatch.setattr(journey, "plan_stage", plan_then_lose)
    return plans


def test_a_save_that_loses_the_version_race_is_merged_with_the_winner(
    editor, register, db, monkeypatch
):
    """The write updates the row only from the version it planned on; having lost the race, the
    save is rolled back whole, planned again on the winner's record and merged with it."""
    from portal.models import AuditEvent, Episode, Submission

    client, _, _ = editor
    episode = register(nhs_number(44), F)
    before = _counts(db)
    plans = _lose_the_version_race(
        monkeypatch, db, episode.id, {"calcium_vitd": "No"}, audited=True
    )
    form = MultiDict({"bone_therapy": "Risedronate", "calcium_vitd": ""})
    response = post_stage(client, episode, "treatment", form, version=1)
    assert response.status_code == 200, response.get_data(as_text=True)[:2000]
    assert plans == ["ready", "ready"]
    db.session.expire_all()
    saved = db.session.get(Episode, episode.id)
    assert (saved.bone_therapy, saved.calcium_vitd, saved.version) == ("Risedronate", "No", 3)
    mine = db.session.query(AuditEvent).filter_by(entity_id=episode.id, user_id=editor[1].id)
    assert [e.changes["_version"] for e in mine.filter_by(action="update")] == [[2, 3]]
    assert db.session.query(Submission).count() == before[3] + 1  # kept once, by the retry


def test_a_save_that_loses_the_race_to_an_unaudited_change_shows_the_conflict(
    editor, register, db, monkeypatch
):
    """When the winner's change cannot be told apart (no version in the trail), the retry shows
    the conflict and writes nothing: the winner's value is never overwritten silently."""
    from portal.models import Episode

    client, _, _ = editor
    episode = register(nhs_number(45), F)
    before = _counts(db)
    plans = _lose_the_version_race(
        monkeypatch, db, episode.id, {"calcium_vitd": "No"}, audited=False
    )
    response = post_stage(client, episode, "treatment", stage_answers("treatment", F), version=1)
    assert response.status_code == 409
    assert plans == ["ready", "conflict"]
    db.session.expire_all()
    assert db.session.get(Episode, episode.id).calcium_vitd == "No"
    assert _counts(db) == before


def test_an_update_after_a_pending_change_of_the_same_record_starts_from_its_new_version(
    editor, register, db
):
    """A change made to the record in hand and not yet flushed goes first; the audited update
    then moves the version on from there instead of failing its own version check."""
    from portal.journey import versions
    from portal.models import AuditEvent, Episode

    episode = register(nhs_number(46), F)  # registered by the signed-in editor
    episode.calcium_vitd = "No"  # pending: the ORM moves the version to 2 when it flushes it
    versions.record_update(Actor.command_line(), episode, {"bone_therapy": "Risedronate"})
    db.session.commit()
    db.session.expire_all()
    saved = db.session.get(Episode, episode.id)
    assert (saved.calcium_vitd, saved.bone_therapy, saved.version) == ("No", "Risedronate", 3)
    update = db.session.query(AuditEvent).filter_by(entity_id=episode.id, action="update").one()
    assert update.changes["_version"] == [2, 3]
