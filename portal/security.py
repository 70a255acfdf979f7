"""Deny by default: sign-in required except on one explicit public list; headers; timeouts."""

from __future__ import annotations

from datetime import timedelta
from functools import wraps
from typing import Any, NoReturn

from flask import Flask, abort, current_app, g, jsonify, redirect, request, session, url_for
from flask_login import current_user, logout_user

from portal import clock, policy
from portal.accounts import second_factor, sessions
from portal.audit import events
from portal.audit.actor import Actor
from portal.extensions import db, login_manager
from portal.models import User

# Endpoints that anyone may reach (security.md, "Who sees what"). Everything else needs sign-in.
PUBLIC_ENDPOINTS = {
    "static",
    "auth.sign_in",
    "auth.second_factor",
    "auth.set_password",
    "main.health",
    "main.ready",
    "main.reachability",
    "main.csrf_token",
    "offline.offline_page",
    "offline.service_worker",
}
# Blueprints whose every page is public (the benchmarks table and public run charts).
PUBLIC_BLUEPRINTS = {"public"}

# What a user who must enrol a second factor may still reach before enrolling.
ENROLMENT_ENDPOINTS = {
    "auth.confirm_identity",
    "auth.two_factor",
    "auth.two_factor_qr",
    "auth.two_factor_restart",
    "auth.sign_out",
    "auth.stay_signed_in",
}

# Requests the browser makes by itself; they never reset the idle timer.
BACKGROUND_HEADER = "X-Background-Request"

_CSP = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'self'",
        "object-src 'none'",
        "worker-src 'self'",
        "manifest-src 'self'",
    ]
)


def init_app(app: Flask) -> None:
    app.jinja_env.globals["session_timeout_meta"] = _session_timeout_meta
    login_manager.login_view = "auth.sign_in"
    login_manager.login_message = "Sign in to continue."
    login_manager.login_message_category = "info"
    login_manager.user_loader(_load_user)
    login_manager.unauthorized_handler(_unauthorized)
    app.before_request(_require_sign_in)
    app.before_request(_refuse_nul_characters)
    app.after_request(_security_headers)


# The session cookie's key for the token of its record (accounts/sessions.py).
SESSION_TOKEN = "session_token"


def _load_user(session_id: str):
    """The signed-in user of a session: its id carries the session version (a raised version
    ends every older session), and its token must name an open session record, so a session
    ended on the "Where you are signed in" page is refused at once by every worker."""
    try:
        user_id, version = (int(part) for part in session_id.split(":"))
    except ValueError:
        return None
    user = db.session.get(User, user_id)
    if user is None or not user.active or user.session_version != version:
        return None
    record = sessions.live(session.get(SESSION_TOKEN), user.id)
    if record is None:
        return None
    g.user_session = record
    return user


def current_session_record():
    """The record of this browser's session (None when not signed in)."""
    return g.get("user_session")


def current_actor() -> Actor:
    """The signed-in user of this request, from the address it came from and in the service
    they work in: who every change and view they make is recorded as (audit/actor.py)."""
    user = current_user._get_current_object()
    if not user.is_authenticated:
        return Actor.visitor(request.remote_addr)
    return Actor.for_user(user, request.remote_addr, session.get("service_id"))


def is_htmx() -> bool:
    return request.headers.get("HX-Request") == "true"


def _unauthorized():
    if is_htmx() or request.accept_mimetypes.best == "application/json":
        # The offline script keeps the submission and asks the user to sign in (offline.md).
        response = jsonify(error="signed_out", sign_in=url_for("auth.sign_in"))
        response.status_code = 401
        return response
    return redirect(url_for("auth.sign_in", next=request.full_path.rstrip("?")))


def is_public(endpoint: str | None) -> bool:
    if endpoint is None:
        return False
    return endpoint in PUBLIC_ENDPOINTS or endpoint.split(".")[0] in PUBLIC_BLUEPRINTS


def _require_sign_in():
    if request.endpoint is None:
        return None  # 404 follows
    if not current_user.is_authenticated:
        if is_public(request.endpoint):
            return None
        return _unauthorized()
    if _session_expired(request.endpoint):
        events.record(current_actor(), "sign_out", detail="session timed out")
        sessions.close(g.user_session)
        db.session.commit()
        logout_user()
        session.clear()
        if is_public(request.endpoint):
            return None
        return _unauthorized()
    if _must_enrol_second_factor() and not (
        request.endpoint in ENROLMENT_ENDPOINTS or is_public(request.endpoint)
    ):
        # An admin (or anyone, when required for all) without a second factor enrols first.
        return _send_to(url_for("auth.two_factor"), "second_factor_required")
    return None


def _send_to(target: str, error: str):
    """A page request is redirected to `target`; an htmx request gets 403 with HX-Redirect."""
    if is_htmx():
        response = jsonify(error=error, go_to=target)
        response.status_code = 403
        response.headers["HX-Redirect"] = target
        return response
    return redirect(target)


def _must_enrol_second_factor() -> bool:
    user = current_user._get_current_object()
    return second_factor.required_for(
        user, current_app.config.get("REQUIRE_TOTP_FOR_ALL", False)
    ) and not second_factor.is_enrolled(user)


def _refuse_nul_characters():
    """No one types a NUL character; PostgreSQL cannot store one and would answer 500. A request
    carrying one in a field, a query parameter or the idempotency key is refused as malformed."""
    values = [request.headers.get("Idempotency-Key", ""), *request.args.values()]
    if request.method in ("POST", "PUT", "PATCH") and request.mimetype in (
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    ):
        values += request.form.values()
    if any("\x00" in value for value in values):
        abort(400, description="The request contained a character that is not allowed.")
    return None


# The time a user was last seen is written again once it is this part of the idle limit old
# (15 s of 30 minutes), not at every request: each write changes the session, so Flask signs and
# sends the cookie again.
LAST_SEEN_STEP = 1 / 120


def _session_expired(endpoint: str) -> bool:
    """Idle and absolute limits; background requests do not count as activity.

    `last_seen` may be up to one step behind the user's last request, so the idle limit is checked
    with that step added: a session never ends before the idle limit the page counts down, and at
    most 15 s after it (of 30 minutes).
    """
    now = clock.now().timestamp()
    started = session.get("signed_in_at")
    last_seen = session.get("last_seen", started)
    if started is None:
        return True
    if now - started > current_app.config["ABSOLUTE_TIMEOUT"].total_seconds():
        return True
    idle = current_app.config["IDLE_TIMEOUT"].total_seconds()
    if now - last_seen > idle * (1 + LAST_SEEN_STEP):
        return True
    if request.headers.get(BACKGROUND_HEADER) != "1" and endpoint != "static":
        if now - last_seen >= idle * LAST_SEEN_STEP:
            session["last_seen"] = now
        if sessions.touch(
            g.user_session, clock.utcnow(), current_app.config["SESSION_TOUCH_SECONDS"]
        ):
            db.session.commit()
    return False


def _session_timeout_meta() -> str:
    """What js/session-timeout.js needs: idle limit, warning lead and seconds until each limit."""
    import json

    idle = current_app.config["IDLE_TIMEOUT"].total_seconds()
    absolute = current_app.config["ABSOLUTE_TIMEOUT"].total_seconds()
    started = session.get("signed_in_at", clock.now().timestamp())
    return json.dumps(
        {
            "idle": int(idle),
            "warning": int(current_app.config.get("SESSION_WARNING_SECONDS", 120)),
            "absolute_left": max(0, int(started + absolute - clock.now().timestamp())),
        }
    )


def start_session(user) -> None:
    """A fresh session at sign-in (and after a password change), with its record on the server
    (the caller commits)."""
    from flask_login import login_user

    service_id = session.get("service_id")
    session.clear()
    token = sessions.start(
        Actor.for_user(user, request.remote_addr), user, request.user_agent.string
    )
    login_user(user)
    session[SESSION_TOKEN] = token
    now = clock.now().timestamp()
    session["signed_in_at"] = now
    session["last_seen"] = now
    if service_id in user.service_ids:
        session["service_id"] = service_id
    session.permanent = True


SECURITY_HEADERS = (
    ("Content-Security-Policy", _CSP),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "same-origin"),
    ("X-Frame-Options", "DENY"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
    ("Permissions-Policy", "camera=(), microphone=(), geolocation=()"),
)


def _security_headers(response):
    headers = response.headers
    # Each one unless the route set its own. (Not Headers.setdefault, which finds a missing
    # header by raising and catching KeyError: six exceptions on every answer.)
    for name, value in SECURITY_HEADERS:
        if name not in headers:
            headers[name] = value
    if request.is_secure and "Strict-Transport-Security" not in headers:
        headers["Strict-Transport-Security"] = "max-age=63072000; includeSubDomains"
    if getattr(g, "patient_data", False) or (
        current_user.is_authenticated and request.endpoint != "static"
    ):
        # Pages behind sign-in may show patient data: never kept by the browser or a proxy.
        headers["Cache-Control"] = "no-store"
    headers.add("Vary", "HX-Request")
    return response


def require(action: str, service: Any = None) -> None:
    """Refuse the request unless the signed-in user may take `action` (on `service`'s records):
    policy.py decides; a refused role or service is audited (403), an inactive service says so."""
    reason = policy.refusal(current_user, action, service)
    if reason == policy.INACTIVE_SERVICE:
        abort(403, description=reason)
    if reason is not None:
        deny(reason)


def requires(action: str):
    """A route for the roles that may take `action` only (policy.py); anyone else gets 403 and
    the denial is audited."""

    def decorator(view):
        @wraps(view)
        def wrapped(*args, **kwargs):
            if not current_user.is_authenticated:
                return _unauthorized()
            require(action)
            return view(*args, **kwargs)

        # Read by allowed_roles and the role x route tests.
        setattr(wrapped, "allowed_roles", policy.ACTIONS[action])  # noqa: B010
        return wrapped

    return decorator


def recently_authenticated() -> bool:
    """Whether the user proved it is them in this session within REAUTHENTICATION_MINUTES."""
    return sessions.recently_reauthenticated(
        current_session_record(),
        clock.utcnow(),
        timedelta(minutes=current_app.config["REAUTHENTICATION_MINUTES"]),
    )


def requires_recent_authentication(back: str | None = None):
    """A route that changes how the user signs in or who is signed in (security.md): it asks for
    the password (and second factor where enrolled) again unless given in the last few minutes.
    A GET comes back to itself afterwards; a POST to the page `back` names, where the form is."""

    def decorator(view):
        @wraps(view)
        def wrapped(*args, **kwargs):
            if not current_user.is_authenticated:
                return _unauthorized()
            if recently_authenticated():
                return view(*args, **kwargs)
            return confirm_first(back)

        # Read by the test that lists the routes asking for it.
        setattr(wrapped, "needs_recent_authentication", True)  # noqa: B010
        return wrapped

    return decorator


def confirm_first(back: str | None = None):
    """Send the user to confirm it is them, then back: a GET to itself, a POST to `back`."""
    if request.method == "GET":
        next_url = request.full_path.rstrip("?")
    else:
        next_url = url_for(back or "main.home")
    return _send_to(url_for("auth.confirm_identity", next=next_url), "reauthentication_required")


def allowed_roles(app: Flask, endpoint: str) -> tuple[str, ...] | None:
    """The roles that may use an endpoint (`requires`), or None when every signed-in role may."""
    return getattr(app.view_functions.get(endpoint), "allowed_roles", None)


def deny(reason: str, status: int = 403) -> NoReturn:
    """Audit a permission denial, then abort."""
    events.record(
        current_actor(), "permission_denied", detail=f"{request.method} {request.path}: {reason}"
    )
    db.session.commit()
    abort(status)
