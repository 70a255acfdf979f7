"""The home page, switching service, and the health, readiness and reachability checks."""

from __future__ import annotations

from flask import Blueprint, abort, current_app, jsonify, redirect, render_template, request
from werkzeug.exceptions import HTTPException

from portal import query_values
from portal.access import current_service, switch_service
from portal.accounts.routes import _safe_next
from portal.admin.forms import ConfirmForm
from portal.extensions import db
from portal.operations import readiness

bp = Blueprint("main", __name__)


@bp.get("/")
def home():
    return render_template("main/home.html", service=current_service())


@bp.post("/service")
def choose_service():
    if not ConfirmForm().validate_on_submit():
        abort(400)
    try:
        service_id = query_values.whole_number(
            request.form.get("service_id"), low=1, high=query_values.LARGEST_ID, what="a service"
        )
    except query_values.QueryValueError:
        abort(400)
    if service_id is None:
        abort(400)
    switch_service(service_id)
    return redirect(_safe_next(request.form.get("next")))


@bp.get("/health")
def health():
    """For a load balancer or a process supervisor: the process answers (nothing else is asked,
    so a database outage never makes every instance look dead at once)."""
    return jsonify(status="ok")


@bp.get("/ready")
def ready():
    """For a load balancer: whether this instance may take requests (operations/readiness.py).
    503 tells the balancer to send requests elsewhere."""
    found = readiness.readiness(db.engine, current_app.config.get("REDIS_URL"))
    response = jsonify(status="ready" if found.ready else "not ready", checks=found.checks)
    response.status_code = 200 if found.ready else 503
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/ping", methods=["GET", "HEAD"])
def reachability():
    """The offline script asks this to decide whether the server is reachable (offline.md)."""
    return "", 204


@bp.app_errorhandler(403)
def forbidden(error):
    return _error_page(403, "You do not have permission to do this", error), 403


@bp.app_errorhandler(404)
def not_found(error):
    return _error_page(404, "Page not found", error), 404


@bp.app_errorhandler(429)
def too_many_requests(error):
    # Flask-Limiter's refusal carries the limit's own message (error_message) as its description.
    return _error_page(429, "Too many attempts", error), 429


@bp.app_errorhandler(400)
def bad_request(error):
    return _error_page(400, "The request could not be handled", error), 400


@bp.app_errorhandler(HTTPException)
def other_refusal(error: HTTPException):
    """Any other refusal (a wrong method, a server fault) in plain words, never Werkzeug's page."""
    status = error.code or 500
    if status >= 500:
        title = "Something went wrong on the server"
        description = (
            "What you sent was not saved. Try again; if it happens again, tell the service desk."
        )
    else:
        title = "This could not be done"
        description = "Go back and try again from the page you were on."
    return render_template(
        "errors/error.html", status=status, title=title, description=description
    ), status


def _error_page(status: int, title: str, error):
    description = getattr(error, "description", None)
    if description == getattr(type(error), "description", None):
        # Werkzeug's stock wording ("The browser (or proxy) sent a request...") is for
        # developers: a page without a reason of its own shows only its plain title.
        description = None
    return render_template("errors/error.html", status=status, title=title, description=description)


@bp.get("/csrf-token")
def csrf_token():
    """A fresh CSRF token for the offline script to replay waiting submissions (offline.md)."""
    from flask_wtf.csrf import generate_csrf

    response = jsonify(csrf_token=generate_csrf())
    response.headers["Cache-Control"] = "no-store"
    return response
