"""Letters to the GP and the patient (issue 18), and the lead's letterhead and contact settings.
A draft is edited as plain text; a final letter is kept unchanged, printed from its page (A4 print
styles) or downloaded as a PDF made on the server. Routes parse, call journey/letters.py, render."""

from __future__ import annotations

from flask import Response, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from portal import clock, policy
from portal.access import get_episode, require_current_service
from portal.admin.forms import ConfirmForm
from portal.extensions import db
from portal.journey import letters
from portal.journey.routes import bp
from portal.models import Letter
from portal.security import current_actor, require


def _letter(letter_id: int) -> Letter:
    """A letter of one of the user's services (404 otherwise, like its episode)."""
    letter = db.session.get(Letter, letter_id)
    if letter is None:
        abort(404)
    get_episode(letter.episode_id)
    return letter


def _checked_form() -> None:
    if not ConfirmForm().validate_on_submit():
        abort(400)


@bp.post("/episodes/<int:episode_id>/letters")
def new_letter(episode_id: int):
    episode = get_episode(episode_id)
    require("write_letters", episode.service)
    _checked_form()
    try:
        letter = letters.create_letter(
            current_actor(),
            episode,
            request.form.get("kind", ""),
            current_user.display_name,
            clock.today(),
        )
    except letters.LetterRefused:
        abort(400)
    db.session.commit()
    return redirect(url_for("journey.letter", letter_id=letter.id), 303)


def _letter_page(letter: Letter, *, inputs=None, errors=None, status=200):
    episode = get_episode(letter.episode_id)
    return render_template(
        "journey/letter.html",
        letter=letter,
        episode=episode,
        patient=episode.patient,
        title=letters.KIND_TITLES[letter.kind],
        inputs=inputs or {"recipient": letter.recipient, "body": letter.body},
        errors=errors or {},
        may_write=policy.may(current_user, "write_letters", episode.service),
        confirm=ConfirmForm(),
    ), status


@bp.get("/letters/<int:letter_id>")
def letter(letter_id: int):
    record = _letter(letter_id)
    if record.state == "final":
        letters.record_download(current_actor(), record, "page (to print)", action="view")
        db.session.commit()
    return _letter_page(record)


@bp.post("/letters/<int:letter_id>")
def save_letter(letter_id: int):
    record = _letter(letter_id)
    require("write_letters", get_episode(record.episode_id).service)
    _checked_form()
    inputs = {"recipient": request.form.get("recipient", ""), "body": request.form.get("body", "")}
    try:
        letters.save_draft(current_actor(), record, inputs["recipient"], inputs["body"])
        if request.form.get("action") == "final":
            letters.make_final(current_actor(), record)
    except letters.LetterRefused as refused:
        db.session.rollback()
        return _letter_page(record, inputs=inputs, errors=refused.errors, status=422)
    db.session.commit()
    flash("Letter made final." if record.state == "final" else "Draft saved.", "success")
    return redirect(url_for("journey.letter", letter_id=record.id), 303)


@bp.get("/letters/<int:letter_id>/pdf")
def letter_pdf(letter_id: int):
    record = _letter(letter_id)
    if record.state != "final":
        abort(404)
    episode = get_episode(record.episode_id)
    html = render_template("journey/letter_pdf.html", letter=record, episode=episode)
    letters.record_download(current_actor(), record, "PDF")
    db.session.commit()
    name = f"{record.kind}-letter-{record.id}.pdf"
    return Response(
        letters.pdf_of(html),
        mimetype="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@bp.route("/service/settings", methods=["GET", "POST"])
def service_settings():
    """A lead's settings of the service: letterhead, address, telephone, signature block, and
    the unanswered attempts after which a patient is lost to follow-up."""
    service = require_current_service()
    require("change_service_settings", service)
    errors: dict[str, str] = {}
    inputs = {name: getattr(service, name) or "" for name in letters.SETTINGS}
    inputs["attempts_before_lost"] = str(service.attempts_before_lost)
    if request.method == "POST":
        _checked_form()
        inputs = {name: request.form.get(name, "") for name in inputs}
        try:
            letters.update_settings(current_actor(), service, request.form)
        except letters.LetterRefused as refused:
            db.session.rollback()
            errors = refused.errors
        else:
            db.session.commit()
            flash("Service settings saved.", "success")
            return redirect(url_for("journey.service_settings"), 303)
    return render_template(
        "journey/service_settings.html",
        service=service,
        inputs=inputs,
        errors=errors,
        labels=letters.SETTING_LABELS,
        placeholders=letters.placeholder_help(),
        confirm=ConfirmForm(),
    ), (422 if errors else 200)
