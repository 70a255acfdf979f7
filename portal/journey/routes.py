"""Find or register a patient, the episode page and its five stage forms, corrections, delete and
restore, history and worklists.

Every save answers 200 (saved: the section, or HX-Redirect), 422 (refused: the section with its
errors and everything typed), or 409 (conflict view, or the existing record offered instead), and
works as a plain POST too (post/redirect/get). Every save is idempotent on its submission id
(spec/offline.md): see `_save`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any
from weakref import WeakKeyDictionary

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user
from jinja2 import Template
from markupsafe import Markup, escape
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.exc import StaleDataError
from werkzeug.datastructures import MultiDict

from kpis import dataset as ds
from portal.access import (
    get_episode,
    get_patient,
    get_stored_episode,
    require_current_service,
    require_writable,
)
from portal.admin.forms import ConfirmForm
from portal.extensions import db
from portal.journey import fields, submissions, worklists
from portal.journey import records as journey
from portal.journey.rules import (
    ValueProblem,
    age_on,
    clean_nhs_number,
    format_value,
    stage_status,
    stage_windows,
    today_in_london,
)
from portal.models import Patient, Service
from portal.models.stored import StoredEpisode
from portal.security import deny, is_htmx
from portal.templating import csrf_token_value

bp = Blueprint("journey", __name__)

EDITORS = ("clinician", "lead")


@bp.app_template_global()
def field_spec(name: str) -> fields.FieldSpec:
    return fields.spec(name)


@bp.app_template_global()
def field_anchor(name: str) -> str:
    return fields.anchor(name)


@bp.app_template_global()
def described_by(name: str, hint: str, error: str | None) -> Markup:
    """The aria-describedby attribute of a field's control: its hint and its error, if any.
    (A function, not a macro: a Jinja macro call cost a stage save 40,000 instructions.)"""
    ids = ([f"{name}-hint"] if hint else []) + ([f"{name}-error"] if error else [])
    return Markup(' aria-describedby="{}"').format(" ".join(ids)) if ids else Markup()


@bp.app_template_global()
def hidden_state(version: int | None) -> Markup:
    """The hidden inputs every save form posts: the CSRF token, a fresh submission id (offline.md)
    and the version the form shows (none for a new record). A function, as described_by."""
    return Markup(
        f'<input type="hidden" name="csrf_token" value="{escape(csrf_token_value())}">\n'
        f'<input type="hidden" name="submission_id" value="{escape(new_submission_id())}">\n'
        f'<input type="hidden" name="version" value="{"" if version is None else escape(version)}">\n'
    )


@bp.app_template_global()
def status_tag(status: str) -> Markup:
    """A stage's status as a tag (not started, in progress, complete). A function, as described_by."""
    return Markup(
        f'<strong class="portal-status portal-status--{escape(status.replace(" ", "-"))}">'
        f"{escape(status.capitalize())}</strong>\n"
    )


@bp.app_template_global()
def choice_items(name: str) -> tuple[tuple[str, Markup, Markup], ...]:
    """(option, unchecked, checked) for each option of a radios or checkboxes field, rendered by
    the choice_item macro of journey/_fields.html once per process: the options never change, so a
    form only picks one copy per option (rendering each option at every form cost a stage save
    0.4 M instructions: docs/bench-journey.md)."""
    template = current_app.jinja_env.get_template("journey/_fields.html")
    # Kept per template: one reloaded in development renders its own, and an app's go with it.
    rendered = _choice_items_of.get(template)
    if rendered is None:
        rendered = _choice_items_of[template] = {}
    if name not in rendered:
        item = template.module.choice_item
        s = fields.spec(name)
        rendered[name] = tuple(
            (option, item(s, index, option, False), item(s, index, option, True))
            for index, option in enumerate(s.options)
        )
    return rendered[name]


_choice_items_of: WeakKeyDictionary[Template, dict[str, tuple]] = WeakKeyDictionary()

# How many rendered fields a process keeps per template before it forgets them all and starts
# again: forms show the same few answers again and again (empty fields above all), while dates and
# free text make new ones.
FIELDS_KEPT = 2048


@bp.app_template_global()
def form_field(name: str, inputs: MultiDict, errors: dict[str, str]) -> Markup:
    """A dataset field as the field macro of journey/_fields.html renders it for these inputs and
    this error, kept per process (rendering a stage's fields at every save cost it 0.4 M
    instructions: docs/bench-journey.md). The key holds everything the macro reads (the inputs
    the field posts, its error) and the macro is given nothing else, so a kept answer is the one
    it would render now."""
    template = current_app.jinja_env.get_template("journey/_fields.html")
    kept = _fields_of.get(template)
    if kept is None:
        kept = _fields_of[template] = {}
    names = fields.input_names(name)
    posted = tuple(tuple(inputs.getlist(input_name)) for input_name in names)
    error = errors.get(name)
    key = (name, posted, error)
    html = kept.get(key)
    if html is None:
        only = MultiDict(
            (input_name, value)
            for input_name, values in zip(names, posted, strict=True)
            for value in values
        )
        html = Markup(template.module.field(name, only, {name: error} if error is not None else {}))
        if len(kept) >= FIELDS_KEPT:
            kept.clear()  # (one dict operation, so threads of a worker never see it half done)
        kept[key] = html
    return html


# Per template, as above; the values hold only strings, so an app and its templates can go.
_fields_of: WeakKeyDictionary[Template, dict[tuple, Markup]] = WeakKeyDictionary()


@bp.app_template_filter("error_link")
def error_link(item: tuple[str, str], prefix: str) -> tuple[str, str]:
    """(link target, message) of a form error for the error summary."""
    name, message = item
    return (fields.anchor(name) if name != "submission_id" else f"{prefix}-save", message)


@bp.app_template_global()
def new_submission_id() -> str:
    """A fresh id for every rendered form (spec/offline.md)."""
    return str(uuid.uuid4())


@bp.app_template_filter("shown")
def shown(value: Any, name: str) -> str:
    """A stored value as people read it."""
    if value is None or value == "":
        return "Not answered"
    if name in ds.DATE_FIELDS:
        return f"{value.day} {value.strftime('%B %Y')}"
    if name in ds.MULTI_VALUE_FIELDS:
        return ", ".join(part for part in str(value).split(";") if part)
    return format_value(name, value)


@bp.app_template_global()
def worklist_counts(service: Service | None):
    """Counts for the home page panel (None for a user of no service)."""
    if service is None:
        return None
    return worklists.counts(service, today_in_london())


def _may_edit(service: Service) -> bool:
    return current_user.role in EDITORS and service.active


def _require_editor(service: Service) -> None:
    """Clinicians and leads enter and correct records of an active service."""
    if current_user.role not in EDITORS:
        deny(f"role {current_user.role} may not change patient records")
    require_writable(service)


# Idempotent saves ----------------------------------------------------------------------------


def _submission() -> tuple[str | None, str]:
    submission_id = submissions.clean_id(
        request.headers.get("Idempotency-Key") or request.form.get("submission_id")
    )
    return submission_id, submissions.content_hash(request.form.items(multi=True))


def _kept_answer(
    submission_id: str | None,
    digest: str,
    *,
    replay: Callable[[submissions.Outcome], Any],
    refused: Callable[[journey.Plan], Any],
    plan: Callable[[], journey.Plan],
    planned: journey.Plan | None = None,
):
    """The answer to a submission already kept: the first save's outcome, or a refusal (of the
    plan made, or made now) if the id was kept for other content. None when it was never saved."""
    try:
        earlier = submissions.first_outcome(current_user.id, submission_id, digest)
    except submissions.SubmissionReused as error:
        result = planned if planned is not None else plan()
        result.errors = {"submission_id": str(error), **result.errors}
        return refused(result)
    return replay(earlier) if earlier is not None else None


def _save(
    *,
    plan: Callable[[], journey.Plan],
    write: Callable[[journey.Plan], tuple[Any, str]],
    saved: Callable[[Any, str], Any],
    replay: Callable[[submissions.Outcome], Any],
    refused: Callable[[journey.Plan], Any],
    conflict: Callable[[journey.Plan], Any],
    existing: Callable[[journey.Plan], Any] | None = None,
    outcome: tuple[Any, str] | None = None,
    rolled_back: Callable[[], None] | None = None,
):
    """Run one save: plan, keep the submission, write and commit; or answer a kept outcome.

    The submission is kept (inserted) before anything else is written, so a copy of a submission
    already saved, or two copies racing each other, meet the unique constraint first: the copy
    rolls back, looks the first outcome up and answers it. A save about to be refused looks it up
    first too, so a replay is never refused for the effect of its own first save. A ready save
    does not look it up beforehand: the constraint answers that question for free (the lookup
    cost a stage save 0.22 M instructions: docs/bench-journey.md). A save that lost a race on
    the record's version is planned once more (merging what the other save wrote).

    After a rollback the ORM reads its instances again; a caller holding a stored row (read with
    Core, models.stored) reads it again in `rolled_back`.
    """
    submission_id, digest = _submission()
    for attempt in (1, 2):
        if attempt == 2:
            answer = _kept_answer(submission_id, digest, replay=replay, refused=refused, plan=plan)
            if answer is not None:
                return answer
        result = plan()
        if result.outcome in ("refused", "conflict") or (
            result.outcome == "existing" and existing is not None
        ):
            answer = _kept_answer(
                submission_id, digest, replay=replay, refused=refused, plan=plan, planned=result
            )
            if answer is not None:
                return answer
        if result.outcome == "refused":
            return refused(result)
        if result.outcome == "conflict":
            return conflict(result)
        if result.outcome == "existing" and existing is not None:
            return existing(result)
        session = db.session()
        try:
            kept = submissions.remember(
                current_user.id,
                submission_id,
                digest,
                endpoint=request.endpoint or request.path,
                entity=outcome[0] if outcome else None,
                outcome_url=outcome[1] if outcome else None,
            )
            record, outcome_url = write(result)
            if outcome is None:
                submissions.point_at(kept, record, outcome_url)
            # What was just written is what the answer shows: no need to read it all back.
            session.expire_on_commit = False
            session.commit()
        except (IntegrityError, StaleDataError):
            session.rollback()
            if attempt == 2:
                raise
            if rolled_back is not None:
                rolled_back()
            continue
        finally:
            session.expire_on_commit = True
        return saved(record, outcome_url)
    raise AssertionError("unreachable")  # pragma: no cover


# Find and register -----------------------------------------------------------------------------


@bp.route("/patients/find", methods=["GET", "POST"])
def find_patient():
    # The NHS number is posted, never put in a URL, so it stays out of access logs, proxy logs
    # and browser history (security.md: no patient-identifiable data in logs).
    service = require_current_service()
    raw = request.form.get("nhs_number", "")
    error = None
    nhs_number = None
    if request.method == "POST":
        try:
            nhs_number = clean_nhs_number(raw)
        except ValueProblem as problem:
            error = str(problem)
    if nhs_number:
        patient = db.session.scalar(
            select(Patient).where(
                Patient.service_id == service.id, Patient.nhs_number == nhs_number
            )
        )
        if patient is not None:
            return redirect(url_for("journey.patient", patient_id=patient.id), 303)
    return render_template(
        "journey/find.html",
        service=service,
        raw=raw,
        error=error,
        not_found=nhs_number,
        may_edit=_may_edit(service),
    ), (422 if error else 200)


def _registration_page(service, inputs, errors=None, existing=None, status=200):
    template = "journey/register.html"
    context = dict(service=service, inputs=inputs, errors=errors or {}, existing=existing)
    if is_htmx():
        return render_template("journey/_register_form.html", **context), status
    return render_template(template, **context), status


@bp.route("/patients/new", methods=["GET", "POST"])
def register_patient():
    service = require_current_service()
    _require_editor(service)
    if request.method == "GET":
        return _registration_page(service, MultiDict())
    if request.form.get("start") == "1":
        # "Register this patient" from the find page: the blank form with the number filled in;
        # nothing is saved.
        return _registration_page(
            service, MultiDict({"nhs_number": request.form.get("nhs_number", "")})
        )
    today = today_in_london()

    def write(plan):
        patient, episode = journey.register(service, plan, current_user)
        return episode, url_for("journey.episode", episode_id=episode.id)

    return _save(
        plan=lambda: journey.plan_registration(service, request.form, today),
        write=write,
        saved=lambda episode, url: _go(
            url, "Patient registered. Record the rest of the journey below."
        ),
        replay=lambda earlier: _go(earlier.outcome_url or url_for("journey.find_patient"), None),
        refused=lambda plan: _registration_page(service, request.form, plan.errors, status=422),
        conflict=lambda plan: _registration_page(service, request.form, status=422),
        existing=lambda plan: _registration_page(
            service, request.form, existing=plan.record, status=409
        ),
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


# Patient page ----------------------------------------------------------------------------------


def _patient_page(
    patient, inputs=None, errors=None, version=None, saved=False, plan=None, status=200
):
    context = dict(
        patient=patient,
        inputs=inputs
        if inputs is not None
        else journey.form_inputs(journey.PATIENT_DETAIL_FIELDS, patient),
        errors=errors or {},
        version=version if version is not None else patient.version,
        saved=saved,
        conflict=plan,
        conflict_inputs=journey.conflict_inputs(journey.PATIENT_DETAIL_FIELDS, plan)
        if plan
        else None,
        may_edit=_may_edit(patient.service),
        fields=journey.PATIENT_DETAIL_FIELDS,
    )
    if is_htmx():
        return render_template("journey/_patient_details.html", **context), status
    context.update(
        episodes=patient.episodes,
        ages={e.id: age_on(patient.date_of_birth, e.fracture_date) for e in patient.episodes},
        statuses={e.id: _statuses(e) for e in patient.episodes},
        confirm=ConfirmForm(),
    )
    return render_template("journey/patient.html", **context), status


@bp.get("/patients/<int:patient_id>")
def patient(patient_id: int):
    record = get_patient(patient_id)
    journey.record_view(record)
    db.session.commit()
    return _patient_page(record)


@bp.post("/patients/<int:patient_id>")
def save_patient(patient_id: int):
    record = get_patient(patient_id)
    _require_editor(record.service)
    form = journey.resolve_conflict_form(request.form)
    base_version = journey.parse_version(form.get("version"))
    today = today_in_london()

    outcome_url = url_for("journey.patient", patient_id=record.id) + "#patient-details"

    def write(plan):
        journey.apply(plan)
        return record, outcome_url

    def saved(_record, url):
        if is_htmx():
            return _patient_page(record, saved=True)
        flash("Patient details saved.", "success")
        return redirect(url, 303)

    def replay(earlier):
        if is_htmx():
            return _patient_page(record, saved=True)
        return redirect(
            earlier.outcome_url or url_for("journey.patient", patient_id=record.id), 303
        )

    return _save(
        plan=lambda: journey.plan_patient(record, form, base_version, today),
        write=write,
        saved=saved,
        replay=replay,
        refused=lambda plan: _patient_page(
            record, inputs=form, errors=plan.errors, version=base_version, status=422
        ),
        conflict=lambda plan: _patient_page(record, plan=plan, status=409),
        outcome=(record, outcome_url),
    )


@bp.route("/patients/<int:patient_id>/episodes/new", methods=["GET", "POST"])
def new_episode(patient_id: int):
    record = get_patient(patient_id)
    _require_editor(record.service)

    def page(inputs, errors=None, existing=None, status=200):
        context = dict(patient=record, inputs=inputs, errors=errors or {}, existing=existing)
        template = "journey/_new_episode_form.html" if is_htmx() else "journey/new_episode.html"
        return render_template(template, **context), status

    if request.method == "GET":
        return page(MultiDict())
    today = today_in_london()

    def write(plan):
        episode = journey.add_episode(record, plan, current_user)
        return episode, url_for("journey.episode", episode_id=episode.id)

    return _save(
        plan=lambda: journey.plan_new_episode(record, request.form, today),
        write=write,
        saved=lambda episode, url: _go(url, "New fracture episode added."),
        replay=lambda earlier: _go(
            earlier.outcome_url or url_for("journey.patient", patient_id=record.id), None
        ),
        refused=lambda plan: page(request.form, plan.errors, status=422),
        conflict=lambda plan: page(request.form, status=422),
        existing=lambda plan: page(request.form, existing=plan.record, status=409),
    )


# Episode page and stages -----------------------------------------------------------------------


def _statuses(episode) -> dict[str, str]:
    values = journey.episode_values(episode)
    return {stage: stage_status(stage, values) for stage in ds.STAGES}


def _stage_context(
    episode, stage, *, inputs=None, errors=None, version=None, saved=False, plan=None
):
    fields_of_stage = ds.STAGES[stage]
    return dict(
        episode=episode,
        stage=stage,
        title=ds.STAGE_TITLES[stage],
        fields=fields_of_stage,
        status=stage_status(stage, journey.episode_values(episode)),
        inputs=inputs if inputs is not None else journey.form_inputs(fields_of_stage, episode),
        errors=errors or {},
        version=version if version is not None else episode.version,
        saved=saved,
        conflict=plan,
        conflict_inputs=journey.conflict_inputs(fields_of_stage, plan) if plan else None,
        windows=stage_windows(episode.fracture_date),
        may_edit=_may_edit(episode.service),
    )


def _episode_page(episode, *, stage=None, status=200, **stage_state):
    """The full episode page; the named stage shows the given state (errors, conflict)."""
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
        today=today_in_london(),
        later=later,
        confirm=ConfirmForm(),
    ), status


def _stage_answer(episode, stage, *, status=200, **state):
    if is_htmx():
        return render_template(
            "journey/_stage.html", **_stage_context(episode, stage, **state)
        ), status
    if isinstance(episode, StoredEpisode):
        episode = get_episode(episode.id)  # the whole page walks the patient's episodes: ORM
    return _episode_page(episode, stage=stage, status=status, **state)


@bp.get("/episodes/<int:episode_id>")
def episode(episode_id: int):
    record = get_episode(episode_id)
    journey.record_view(record.patient)
    db.session.commit()
    return _episode_page(record)


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
    # Read with Core: a save reads and writes the row, it walks no relationship (models.stored).
    record = get_stored_episode(episode_id)
    _stage_or_404(stage)
    _require_editor(record.service)
    form = journey.resolve_conflict_form(request.form)
    base_version = journey.parse_version(form.get("version"))
    today = today_in_london()
    anchor = url_for("journey.episode", episode_id=record.id) + f"#stage-{stage}"

    def write(plan):
        journey.apply(plan)
        return record, anchor

    def saved(_record, url):
        if is_htmx():
            return _stage_answer(record, stage, saved=True)
        flash(f"{ds.STAGE_TITLES[stage]} saved.", "success")
        return redirect(url, 303)

    def replay(earlier):
        if is_htmx():
            return _stage_answer(record, stage, saved=True, status=earlier.status_code)
        return redirect(earlier.outcome_url or anchor, 303)

    def read_again():
        nonlocal record
        record = get_stored_episode(episode_id)

    return _save(
        plan=lambda: journey.plan_stage(record, stage, form, base_version, today),
        rolled_back=read_again,
        write=write,
        saved=saved,
        replay=replay,
        refused=lambda plan: _stage_answer(
            record, stage, inputs=form, errors=plan.errors, version=base_version, status=422
        ),
        conflict=lambda plan: _stage_answer(record, stage, plan=plan, status=409),
        outcome=(record, anchor),
    )


# History, delete, restore --------------------------------------------------------------------


@bp.get("/episodes/<int:episode_id>/history")
def history(episode_id: int):
    record = get_episode(episode_id, include_deleted=current_user.role == "admin")
    journey.record_view(record.patient)
    db.session.commit()
    return render_template(
        "journey/history.html",
        episode=record,
        patient=record.patient,
        lines=journey.history(record),
    )


@bp.route("/episodes/<int:episode_id>/delete", methods=["GET", "POST"])
def delete_episode(episode_id: int):
    record = get_episode(episode_id)
    if current_user.role != "lead":
        deny(f"role {current_user.role} may not delete an episode")
    require_writable(record.service)
    errors: dict[str, str] = {}
    if request.method == "POST":
        if not ConfirmForm().validate_on_submit():
            abort(400)
        try:
            journey.delete_episode(
                record,
                request.form.get("reason", ""),
                request.form.get("confirm") == "yes",
                current_user,
            )
        except journey.DeleteRefused as refused:
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
    if current_user.role != "admin":
        deny(f"role {current_user.role} may not restore an episode")
    require_writable(record.service)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    if record.deleted_at is not None:
        journey.restore_episode(record)
        db.session.commit()
        flash("Episode restored.", "success")
    return _go(url_for("journey.episode", episode_id=record.id), None)


@bp.get("/episodes/deleted")
def deleted_episodes():
    if current_user.role != "admin":
        deny(f"role {current_user.role} may not list deleted episodes")
    service = require_current_service()
    return render_template(
        "journey/deleted.html",
        service=service,
        episodes=journey.deleted_episodes(service),
        confirm=ConfirmForm(),
    )


# Worklists -------------------------------------------------------------------------------------


@bp.get("/worklists")
def worklist_index():
    service = require_current_service()
    return render_template(
        "journey/worklists.html",
        service=service,
        counts=worklists.counts(service, today_in_london()),
    )


@bp.route("/worklists/<key>", methods=["GET", "POST"])
def worklist(key: str):
    """A worklist, sorted, filtered and paged. Filtering by NHS number is posted and never put in
    a URL (URLs reach access logs and browser history); sorting and paging a list filtered that
    way post the filter again. A number given in a query string is ignored."""
    service = require_current_service()
    chosen = worklists.WORKLISTS.get(key)
    if chosen is None:
        abort(404)
    posted = request.method == "POST"
    result = worklists.page(
        chosen,
        service,
        today_in_london(),
        **worklists.choices(request.form if posted else request.args, posted=posted),
    )
    template = "journey/_worklist_table.html" if is_htmx() else "journey/worklist.html"
    return render_template(template, service=service, page=result, worklists=worklists.WORKLISTS)
