"""Find or register a patient, the episode page and its five stage forms, corrections, delete and
restore, history and worklists. Routes parse the request, call one function of the journey's
logic and render what it answers.

Every save answers 200 (saved: the section, or HX-Redirect), 422 (refused: the section with its
errors and everything typed), or 409 (conflict view, or the existing record offered instead), and
works as a plain POST too (post/redirect/get). Every save is idempotent on its submission id
(spec/offline.md, journey/saving.py).
"""

from __future__ import annotations

from flask import (
    Blueprint,
    abort,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user
from werkzeug.datastructures import MultiDict

from kpis import dataset as ds
from portal import clock, policy
from portal.access import get_episode, get_patient, require_current_service
from portal.admin.forms import ConfirmForm
from portal.extensions import db
from portal.journey import (
    audit_completion,
    contacts,
    deletion,
    forms,
    history,
    letters,
    next_steps,
    plans,
    saving,
    unusual_dates,
    worklists,
)
from portal.journey.rules import age_on, stage_status, stage_windows
from portal.journey.submissions import PostedSubmission
from portal.journey.treatment_plan.routes import plan_context
from portal.models import Episode, Patient, Service
from portal.security import current_actor, is_htmx, require

bp = Blueprint("journey", __name__)


@bp.app_template_global()
def worklist_counts(service: Service | None):
    """Counts for the home page panel (None for a user of no service)."""
    if service is None:
        return None
    return worklists.counts(service, clock.today())


def _may_edit(service: Service) -> bool:
    return policy.may(current_user, "change_records", service)


def _posted() -> PostedSubmission:
    return PostedSubmission.posted(
        request.headers.get("Idempotency-Key") or request.form.get("submission_id"),
        request.form.items(multi=True),
    )


def _go(url: str, message: str | None):
    """After a save that opens another page: HX-Redirect for htmx, 303 for a plain post."""
    if message:
        flash(message, "success")
    if is_htmx():
        response = make_response("", 200)
        response.headers["HX-Redirect"] = url
        return response
    return redirect(url, 303)


# Find and register -----------------------------------------------------------------------------


def _registration_page(service, inputs, errors=None, existing=None, status=200):
    template = "journey/_register_form.html" if is_htmx() else "journey/register.html"
    context = dict(service=service, inputs=inputs, errors=errors or {}, existing=existing)
    return render_template(template, **context), status


@bp.route("/patients/new", methods=["GET", "POST"])
def register_patient():
    service = require_current_service()
    require("change_records", service)
    if request.method == "GET":
        return _registration_page(service, MultiDict())
    if request.form.get("start") == "1":
        # "Register this patient" from the find page: the blank form with the number filled in;
        # nothing is saved.
        return _registration_page(
            service, MultiDict({"nhs_number": request.form.get("nhs_number", "")})
        )
    result = saving.register_patient(
        current_actor(),
        service,
        request.form,
        _posted(),
        clock.today(),
        outcome_url=lambda episode: url_for("journey.episode", episode_id=episode.id),
    )
    db.session.commit()
    if result.outcome == saving.SAVED:
        return _go(
            result.outcome_url or url_for("journey.find_patient"),
            "Patient registered. Record the rest of the journey below.",
        )
    if result.outcome == saving.REPLAYED:
        return _go(result.outcome_url or url_for("journey.find_patient"), None)
    if result.outcome == saving.EXISTING:
        return _registration_page(service, request.form, existing=result.record, status=409)
    return _registration_page(service, request.form, result.errors, status=422)


# Patient page ----------------------------------------------------------------------------------


def _patient_page(patient: Patient, *, status=200, **state):
    context = _patient_context(patient, **state)
    if is_htmx():
        return render_template("journey/_patient_details.html", **context), status
    context.update(
        episodes=patient.episodes,
        ages={e.id: age_on(patient.date_of_birth, e.fracture_date) for e in patient.episodes},
        statuses={e.id: _statuses(e) for e in patient.episodes},
        confirm=ConfirmForm(),
    )
    return render_template("journey/patient.html", **context), status


def _patient_context(patient, inputs=None, errors=None, version=None, saved=False, result=None):
    fields = forms.PATIENT_DETAIL_FIELDS
    return dict(
        patient=patient,
        inputs=inputs if inputs is not None else forms.form_inputs(fields, patient),
        errors=errors or {},
        version=version if version is not None else patient.version,
        saved=saved,
        conflict=result,
        conflict_inputs=(
            forms.conflict_inputs(fields, result.values, result.conflicts) if result else None
        ),
        may_edit=_may_edit(patient.service),
        fields=fields,
    )


@bp.get("/patients/<int:patient_id>")
def patient(patient_id: int):
    record = get_patient(patient_id)
    history.record_view(current_actor(), record)
    db.session.commit()
    return _patient_page(record)


@bp.post("/patients/<int:patient_id>")
def save_patient(patient_id: int):
    record = get_patient(patient_id)
    require("change_records", record.service)
    form = forms.resolve_conflict_form(request.form)
    base_version = forms.parse_version(form.get("version"))
    anchor = url_for("journey.patient", patient_id=record.id) + "#patient-details"
    result = saving.save_patient(
        current_actor(), record, form, _posted(), base_version, clock.today(), outcome_url=anchor
    )
    db.session.commit()
    if result.outcome in (saving.SAVED, saving.REPLAYED):
        if is_htmx():
            return _patient_page(record, saved=True, status=result.status_code)
        if result.outcome == saving.SAVED:
            flash("Patient details saved.", "success")
        return redirect(result.outcome_url or anchor, 303)
    if result.outcome == saving.CONFLICT:
        return _patient_page(record, result=result, status=409)
    return _patient_page(
        record, inputs=form, errors=result.errors, version=base_version, status=422
    )


@bp.route("/patients/<int:patient_id>/episodes/new", methods=["GET", "POST"])
def new_episode(patient_id: int):
    record = get_patient(patient_id)
    require("change_records", record.service)

    def page(inputs, errors=None, existing=None, status=200):
        context = dict(patient=record, inputs=inputs, errors=errors or {}, existing=existing)
        template = "journey/_new_episode_form.html" if is_htmx() else "journey/new_episode.html"
        return render_template(template, **context), status

    if request.method == "GET":
        return page(MultiDict())
    result = saving.add_episode(
        current_actor(),
        record,
        request.form,
        _posted(),
        clock.today(),
        outcome_url=lambda episode: url_for("journey.episode", episode_id=episode.id),
    )
    db.session.commit()
    if result.outcome == saving.SAVED:
        return _go(
            result.outcome_url or url_for("journey.patient", patient_id=record.id),
            "New fracture episode added.",
        )
    if result.outcome == saving.REPLAYED:
        return _go(result.outcome_url or url_for("journey.patient", patient_id=record.id), None)
    if result.outcome == saving.EXISTING:
        return page(request.form, existing=result.record, status=409)
    return page(request.form, result.errors, status=422)


# Episode page and stages -----------------------------------------------------------------------


def _statuses(episode: Episode) -> dict[str, str]:
    values = plans.episode_values(episode)
    return {stage: stage_status(stage, values) for stage in ds.STAGES}


def _stage_context(
    episode,
    stage,
    *,
    inputs=None,
    errors=None,
    version=None,
    saved=False,
    result=None,
    warnings=None,
):
    fields_of_stage = forms.stage_fields(stage)
    status = stage_status(stage, plans.episode_values(episode))
    return dict(
        episode=episode,
        stage=stage,
        title=ds.STAGE_TITLES[stage],
        fields=fields_of_stage,
        status=status,
        stage_number=list(ds.STAGES).index(stage) + 1,
        stage_count=len(ds.STAGES),
        # Issue 22: a complete stage is folded to its heading until opened, unless this answer
        # is about it (saved, refused, in conflict).
        folded=status == "complete" and not (errors or saved or result or warnings),
        inputs=inputs if inputs is not None else forms.form_inputs(fields_of_stage, episode),
        errors=errors or {},
        version=version if version is not None else episode.version,
        saved=saved,
        conflict=result,
        conflict_inputs=(
            forms.conflict_inputs(fields_of_stage, result.values, result.conflicts)
            if result
            else None
        ),
        windows=stage_windows(episode.fracture_date),
        timing=next_steps.stage_timing(episode, stage, clock.today()),
        may_edit=_may_edit(episode.service)
        # Complete for the audit: read only, unless a refused save shows what was typed.
        and (not audit_completion.is_locked(episode) or bool(errors)),
        warnings=warnings or {},
        confirm_value=unusual_dates.confirmation_value(warnings or {}),
    )


def episode_page(
    episode: Episode,
    *,
    stage=None,
    status=200,
    plan=None,
    reopen_error=None,
    contact_state=None,
    **stage_state,
):
    """The full episode page; the named stage shows the given state (errors, conflict), the
    treatment plan its own (`plan`, treatment_plan.routes.plan_context), and the contact attempt
    form what was typed and its errors."""
    sections = {
        name: _stage_context(episode, name, **(stage_state if name == stage else {}))
        for name in ds.STAGES
    }
    patient = episode.patient
    later = [
        e for e in patient.episodes if e.previous_episode_id == episode.id and e.deleted_at is None
    ]
    return render_template(
        "journey/episode.html",
        episode=episode,
        patient=patient,
        sections=sections,
        age=age_on(patient.date_of_birth, episode.fracture_date),
        windows=stage_windows(episode.fracture_date),
        today=clock.today(),
        later=later,
        confirm=ConfirmForm(),
        plan=plan if plan is not None else plan_context(episode),
        reopen_reason=request.form.get("reason", "") if request.method == "POST" else "",
        reopen_error=reopen_error,
        attempts=contacts.attempts_of(episode),
        letters=letters.letters_of(episode),
        contact=_contact_context(episode, **(contact_state or {})),
        may_edit=_may_edit(episode.service),
    ), status


def _contact_context(episode: Episode, inputs=None, errors=None, saved=False):
    today = clock.today()
    if inputs is None:
        inputs = MultiDict(
            {
                "purpose": contacts.suggested_purpose(episode, today),
                "made_on-day": str(today.day),
                "made_on-month": str(today.month),
                "made_on-year": str(today.year),
            }
        )
    return dict(inputs=inputs, errors=errors or {}, saved=saved)


@bp.post("/episodes/<int:episode_id>/contact-attempts")
def record_contact_attempt(episode_id: int):
    record = get_episode(episode_id)
    require("change_records", record.service)
    anchor = url_for("journey.episode", episode_id=record.id) + "#contact-attempts"
    result = saving.record_contact_attempt(
        current_actor(), record, request.form, _posted(), clock.today(), outcome_url=anchor
    )
    db.session.commit()
    if result.outcome in (saving.SAVED, saving.REPLAYED):
        if result.outcome == saving.SAVED:
            flash("Contact attempt recorded.", "success")
        return _go(result.outcome_url or anchor, None)
    state = dict(inputs=request.form, errors=result.errors)
    return episode_page(record, status=422, contact_state=state)


def _stage_answer(episode: Episode, stage: str, *, status=200, **state):
    if is_htmx():
        return render_template("journey/_stage.html", **_stage_context(episode, stage, **state)), (
            status
        )
    return episode_page(episode, stage=stage, status=status, **state)


@bp.get("/episodes/<int:episode_id>")
def episode(episode_id: int):
    record = get_episode(episode_id)
    history.record_view(current_actor(), record.patient)
    db.session.commit()
    return episode_page(record)


def _stage_or_404(stage: str) -> str:
    if stage not in ds.STAGES:
        abort(404)
    return stage


@bp.get("/episodes/<int:episode_id>/stages/<stage>")
def stage_section(episode_id: int, stage: str):
    """One stage's section as stored (htmx reloads it; without htmx, the episode page)."""
    record = get_episode(episode_id)
    _stage_or_404(stage)
    if not is_htmx():
        return redirect(url_for("journey.episode", episode_id=record.id) + f"#stage-{stage}", 303)
    return _stage_answer(record, stage)


@bp.post("/episodes/<int:episode_id>/stages/<stage>")
def save_stage(episode_id: int, stage: str):
    record = get_episode(episode_id)
    _stage_or_404(stage)
    require("change_records", record.service)
    form = forms.resolve_conflict_form(request.form)
    base_version = forms.parse_version(form.get("version"))
    anchor = url_for("journey.episode", episode_id=record.id) + f"#stage-{stage}"
    result = saving.save_stage(
        current_actor(),
        record,
        stage,
        form,
        _posted(),
        base_version,
        clock.today(),
        outcome_url=anchor,
    )
    db.session.commit()
    if result.outcome in (saving.SAVED, saving.REPLAYED):
        if is_htmx():
            return _stage_answer(record, stage, saved=True, status=result.status_code)
        if result.outcome == saving.SAVED:
            flash(f"{ds.STAGE_TITLES[stage]} saved.", "success")
        return redirect(result.outcome_url or anchor, 303)
    if result.outcome == saving.CONFLICT:
        return _stage_answer(record, stage, result=result, status=409)
    return _stage_answer(
        record,
        stage,
        inputs=form,
        errors=result.errors,
        version=base_version,
        warnings=result.warnings,
        status=422,
    )


# History, delete, restore --------------------------------------------------------------------


@bp.get("/episodes/<int:episode_id>/history", endpoint="history")
def episode_history(episode_id: int):
    record = get_episode(
        episode_id, include_deleted=policy.may(current_user, "see_deleted_episodes")
    )
    history.record_view(current_actor(), record.patient)
    db.session.commit()
    return render_template(
        "journey/history.html",
        episode=record,
        patient=record.patient,
        lines=history.history(record),
    )


@bp.route("/episodes/<int:episode_id>/delete", methods=["GET", "POST"])
def delete_episode(episode_id: int):
    record = get_episode(episode_id)
    require("delete_episode", record.service)
    errors: dict[str, str] = {}
    if request.method == "POST":
        if not ConfirmForm().validate_on_submit():
            abort(400)
        try:
            deletion.delete_episode(
                current_actor(),
                record,
                request.form.get("reason", ""),
                request.form.get("confirm") == "yes",
            )
        except deletion.DeleteRefused as refused:
            errors[refused.field] = str(refused)
        else:
            db.session.commit()
            flash("Episode deleted. An admin can restore it.", "success")
            return _go(url_for("journey.patient", patient_id=record.patient_id), None)
    return render_template(
        "journey/delete.html",
        episode=record,
        patient=record.patient,
        errors=errors,
        reason=request.form.get("reason", ""),
        confirm=ConfirmForm(),
    ), (422 if errors else 200)


@bp.post("/episodes/<int:episode_id>/restore")
def restore_episode(episode_id: int):
    record = get_episode(episode_id, include_deleted=True)
    require("restore_episode", record.service)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    if record.deleted_at is not None:
        deletion.restore_episode(current_actor(), record)
        db.session.commit()
        flash("Episode restored.", "success")
    return _go(url_for("journey.episode", episode_id=record.id), None)


@bp.post("/episodes/<int:episode_id>/mark-complete")
def complete_for_audit(episode_id: int):
    """A lead marks the episode complete for the audit: locked against casual edits."""
    record = get_episode(episode_id)
    require("complete_for_audit", record.service)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    audit_completion.mark_complete(current_actor(), record)
    db.session.commit()
    return _go(
        url_for("journey.episode", episode_id=record.id) + "#audit-completion",
        "Marked complete for the audit. The episode is locked against changes.",
    )


@bp.post("/episodes/<int:episode_id>/reopen")
def reopen_for_audit(episode_id: int):
    """A lead reopens a complete episode, with a reason kept in its history."""
    record = get_episode(episode_id)
    require("reopen_for_audit", record.service)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    try:
        audit_completion.reopen(current_actor(), record, request.form.get("reason", ""))
    except audit_completion.ReopenRefused as refused:
        if is_htmx():
            return render_template(
                "journey/_audit_completion.html",
                episode=record,
                reopen_reason=request.form.get("reason", ""),
                reopen_error=str(refused),
            ), 422
        return episode_page(record, status=422, reopen_error=str(refused))
    db.session.commit()
    return _go(
        url_for("journey.episode", episode_id=record.id) + "#audit-completion",
        "Episode reopened for changes.",
    )


@bp.get("/episodes/deleted")
def deleted_episodes():
    require("see_deleted_episodes")
    service = require_current_service()
    return render_template(
        "journey/deleted.html",
        service=service,
        episodes=deletion.deleted_episodes(service),
        confirm=ConfirmForm(),
    )


# The nurse's day: finding a patient, worklists, letters (modules of their own, on this blueprint).
from portal.journey import letter_routes, search_routes, worklist_routes  # noqa: E402, F401
