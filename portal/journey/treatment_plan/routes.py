"""The treatment plan of an episode and the "treatment due" worklist (journey/treatment.py).

Each save answers as the stage forms do: 200 with the plan's section (htmx) or a 303 back to the
episode (a plain post); 422 with the section, its errors and everything typed. Saves are
idempotent on their submission id (journey/saving.py).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from werkzeug.datastructures import MultiDict

from portal import clock, policy
from portal.access import get_episode, require_current_service
from portal.extensions import db
from portal.journey import treatment, treatment_saving
from portal.journey.saving import REPLAYED, SAVED, SaveResult
from portal.journey.submissions import PostedSubmission
from portal.models import Episode, TreatmentCourse
from portal.models.treatment import ROUTES, STOP_REASONS
from portal.security import current_actor, is_htmx, require

bp = Blueprint("treatment", __name__)

SAVED_MESSAGES = {
    "start": "Drug started: its schedule is below.",
    "dose": "Dose recorded.",
    "review": "Review recorded.",
    "stop": "Course stopped.",
}


def plan_context(
    episode: Episode,
    *,
    form_key: str | None = None,
    inputs: Any = None,
    errors: dict[str, str] | None = None,
    saved: str | None = None,
) -> dict[str, Any]:
    """What the plan's section shows; `form_key` names the form that was refused, if any."""
    courses = treatment.episode_courses(episode)
    return dict(
        courses=courses,
        schedule=treatment.plan_schedule(courses),
        today=clock.today(),
        form_key=form_key,
        inputs=inputs if inputs is not None else MultiDict(),
        blank=MultiDict(),
        errors=errors or {},
        saved=saved,
        may_edit=policy.may(current_user, "change_records", episode.service)
        and episode.deleted_at is None,
        drugs=treatment_saving.OFFERED_DRUGS,
        routes=ROUTES,
        stop_reasons=STOP_REASONS,
        labels=treatment_saving.LABELS,
    )


def _course_of(episode: Episode, course_id: int) -> TreatmentCourse:
    course = db.session.get(TreatmentCourse, course_id)
    if course is None or course.episode_id != episode.id:
        abort(404)
    return course


def _posted() -> PostedSubmission:
    return PostedSubmission.posted(
        request.headers.get("Idempotency-Key") or request.form.get("submission_id"),
        request.form.items(multi=True),
    )


def _answer(episode: Episode, kind: str, form_key: str, result: SaveResult):
    anchor = url_for("journey.episode", episode_id=episode.id) + "#treatment-plan"
    if result.outcome in (SAVED, REPLAYED):
        if is_htmx():
            context = plan_context(episode, saved=SAVED_MESSAGES[kind])
            return render_template(
                "journey/_treatment_plan.html", episode=episode, plan=context
            ), result.status_code
        if result.outcome == SAVED:
            flash(SAVED_MESSAGES[kind], "success")
        return redirect(result.outcome_url or anchor, 303)
    context = plan_context(episode, form_key=form_key, inputs=request.form, errors=result.errors)
    if is_htmx():
        return render_template("journey/_treatment_plan.html", episode=episode, plan=context), 422
    from portal.journey.routes import episode_page

    return episode_page(episode, plan=context, status=422)


def _editable(episode_id: int) -> Episode:
    episode = get_episode(episode_id)
    require("change_records", episode.service)
    return episode


@bp.get("/episodes/<int:episode_id>/treatment")
def section(episode_id: int):
    """The plan's section as stored (htmx reloads it; without htmx, the episode page)."""
    episode = get_episode(episode_id)
    if not is_htmx():
        return redirect(url_for("journey.episode", episode_id=episode.id) + "#treatment-plan", 303)
    return render_template(
        "journey/_treatment_plan.html", episode=episode, plan=plan_context(episode)
    )


@bp.post("/episodes/<int:episode_id>/treatment/start")
def start(episode_id: int):
    episode = _editable(episode_id)
    result = treatment_saving.start_course(
        current_actor(),
        episode,
        request.form,
        _posted(),
        clock.today(),
        outcome_url=url_for("journey.episode", episode_id=episode.id) + "#treatment-plan",
    )
    db.session.commit()
    return _answer(episode, "start", "start", result)


def _event(episode_id: int, course_id: int, kind: str):
    episode = _editable(episode_id)
    course = _course_of(episode, course_id)
    anchor = url_for("journey.episode", episode_id=episode.id) + "#treatment-plan"
    if kind == "stop":
        result = treatment_saving.stop_course(
            current_actor(), course, request.form, _posted(), clock.today(), outcome_url=anchor
        )
    else:
        result = treatment_saving.record_event(
            current_actor(),
            course,
            kind,
            request.form,
            _posted(),
            clock.today(),
            outcome_url=anchor,
        )
    db.session.commit()
    return _answer(episode, kind, f"{kind}-{course.id}", result)


@bp.post("/episodes/<int:episode_id>/treatment/<int:course_id>/dose")
def dose(episode_id: int, course_id: int):
    return _event(episode_id, course_id, "dose")


@bp.post("/episodes/<int:episode_id>/treatment/<int:course_id>/review")
def review(episode_id: int, course_id: int):
    return _event(episode_id, course_id, "review")


@bp.post("/episodes/<int:episode_id>/treatment/<int:course_id>/stop")
def stop(episode_id: int, course_id: int):
    return _event(episode_id, course_id, "stop")


@bp.get("/worklists/treatment-due")
def due():
    """Doses, reviews and follow-on drugs due or overdue across years, denosumab first."""
    service = require_current_service()
    rows = treatment.treatment_due(service, clock.today())
    return render_template("journey/treatment_due.html", service=service, rows=rows)
