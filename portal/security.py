"""Deny by default: sign-in required except on one explicit public list; headers; timeouts."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache, wraps

from flask import Flask, abort, current_app, g, jsonify, redirect, request, session, url_for
from flask_login import current_user, logout_user
from sqlalchemy import bindparam, select

from portal.accounts import second_factor
from portal.extensions import db, login_manager
from portal.models.accounts import SignInIdentity

# Endpoints that anyone may reach (security.md, "Who sees what"). Everything else needs sign-in.
PUBLIC_ENDPOINTS = {
    "static",
    "auth.sign_in",
    "auth.second_factor",
    "auth.set_password",
    "main.health",
    "main.reachability",
    "main.csrf_token",
    "offline.offline_page",
    "offline.service_worker",
}
# Blueprints whose every page is public (the benchmarks table and public run charts).
PUBLIC_BLUEPRINTS = {"public"}

# What a user who must enrol a second factor may still reach before enrolling.
ENROLMENT_ENDPOINTS = {
    "auth.two_factor",
    "auth.two_factor_qr",
    "auth.two_factor_restart",
    "auth.sign_out",
    "auth.stay_signed_in",
}
# Blueprints whose every route is limited to some roles (checked in their before_request).
ROLE_RESTRICTED_BLUEPRINTS: dict[str, tuple[str, ...]] = {"admin": ("admin",)}

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
    app.before_request(_limit_uploads)
    app.before_request(_refuse_nul_characters)
    app.after_request(_security_headers)


def _load_user(session_id: str):
    try:
        user_id, version = (int(part) for part in session_id.split(":"))
    except ValueError:
        return None
    rows = db.session.connection().execute(_user_with_service_ids(), {"user_id": user_id}).all()
    # A raised session_version (sign-out, password change, deactivation) ends every old session.
    if not rows or not rows[0].active or rows[0].session_version != version:
        return None
    service_ids = frozenset(row.service_id for row in rows if row.service_id is not None)
    return SignedInUser(rows[0], service_ids)


class SignedInUser(SignInIdentity):
    """The signed-in user as every request sees it: what the sign-in check, the role and service
    checks and the pages read, from one Core query of the user's row and service ids.

    Loading the ORM user with its services at every request cost 0.4 M instructions, a tenth of
    a request that does nothing (docs/bench-journey.md). The user's services are loaded, as ORM
    objects, only when a page lists them; a change to the account itself goes through
    `signed_in_account()`, the ORM user of the same row. Nothing is kept between requests.
    """

    __slots__ = (
        "id",
        "email",
        "display_name",
        "role",
        "active",
        "session_version",
        "totp_secret",
        "service_ids",
        "_services",
    )

    def __init__(self, row, service_ids: frozenset[int]):
        self.id = row.id
        self.email = row.email
        self.display_name = row.display_name
        self.role = row.role
        self.active = row.active
        self.session_version = row.session_version
        self.totp_secret = row.totp_secret
        self.service_ids = service_ids
        self._services = None

    @property
    def services(self) -> list:
        """The user's services in code order (ORM objects, loaded the first time they are asked
        for in the request)."""
        if self._services is None:
            self._services = (
                list(db.session.scalars(_services_by_id(), {"ids": list(self.service_ids)}))
                if self.service_ids
                else []
            )
        return self._services

    def __repr__(self) -> str:
        return f"<SignedInUser {self.id} {self.role}>"


def signed_in_account():
    """The signed-in user's own ORM record, for changes to the account (sign-out, password,
    second factor): the same row as `current_user`, from the session's identity map if loaded."""
    from portal.models import User

    return db.session.get(User, current_user.id)


@cache
def _user_with_service_ids():
    """Built once: a statement object keeps its cache key, which SQLAlchemy otherwise works out
    again at every request. One row per service (one with no service id for a user with none)."""
    from portal.models import User, user_services

    users = User.__table__.c  # the table's columns: a Core statement, no ORM compile step
    return (
        select(
            users.id,
            users.email,
            users.display_name,
            users.role,
            users.active,
            users.session_version,
            users.totp_secret,
            user_services.c.service_id,
        )
        .outerjoin(user_services, user_services.c.user_id == users.id)
        .where(users.id == bindparam("user_id"))
    )


@cache
def _services_by_id():
    """The user's services, in the order the header's switch lists them."""
    from portal.models import Service

    return (
        select(Service)
        .where(Service.id.in_(bindparam("ids", expanding=True)))
        .order_by(Service.code)
    )


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
        from portal.audit import events as audit

        audit.record(
            "sign_out", user=current_user._get_current_object(), detail="session timed out"
        )
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
        target = url_for("auth.two_factor")
        if is_htmx():
            response = jsonify(error="second_factor_required", enrol=target)
            response.status_code = 403
            response.headers["HX-Redirect"] = target
            return response
        return redirect(target)
    return None


def _must_enrol_second_factor() -> bool:
    user = current_user._get_current_object()
    return second_factor.required_for(
        user, current_app.config.get("REQUIRE_TOTP_FOR_ALL", False)
    ) and not second_factor.is_enrolled(user)


def _refuse_nul_characters():
    """No one types a NUL character; PostgreSQL cannot store one and would answer 500. A request
    carrying one in a field, a query parameter or the idempotency key is refused as malformed."""
    current = request._get_current_object()  # one lookup, not one a property
    values = [current.headers.get("Idempotency-Key", "")]
    if current.query_string:  # parsed only when there is one (a save has none)
        values += current.args.values()
    if current.method in ("POST", "PUT", "PATCH") and current.mimetype in (
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    ):
        values += current.form.values()
    if any("\x00" in value for value in values):
        abort(400, description="The request contained a character that is not allowed.")
    return None


def _limit_uploads():
    """Per-address rate limit on every file upload, whichever route receives it."""
    if request.method != "POST" or request.mimetype != "multipart/form-data":
        return None
    from flask_limiter.util import get_remote_address
    from limits import parse

    from portal.extensions import limiter

    if not limiter.enabled or not current_app.config.get("RATELIMIT_ENABLED", True):
        return None
    item = parse(current_app.config["UPLOAD_RATE_LIMIT"])
    if not limiter.limiter.hit(item, "upload", get_remote_address()):
        abort(429, description="Too many uploads from this address. Wait a minute and try again.")
    return None


def _now() -> datetime:
    return datetime.now(UTC)


# The time a user was last seen is written again once it is this part of the idle limit old
# (15 s of 30 minutes), not at every request: each write signs and sends the session cookie again,
# which cost a stage save more than its own audit event (docs/bench-journey.md).
LAST_SEEN_STEP = 1 / 120


def _session_expired(endpoint: str) -> bool:
    """Idle and absolute limits; background requests do not count as activity.

    `last_seen` may be up to one step behind the user's last request, so the idle limit is checked
    with that step added: a session never ends before the idle limit the page counts down, and at
    most 15 s after it (of 30 minutes).
    """
    now = _now().timestamp()
    started = session.get("signed_in_at")
    last_seen = session.get("last_seen", started)
    if started is None:
        return True
    if now - started > current_app.config["ABSOLUTE_TIMEOUT"].total_seconds():
        return True
    idle = current_app.config["IDLE_TIMEOUT"].total_seconds()
    if now - last_seen > idle * (1 + LAST_SEEN_STEP):
        return True
    if (
        now - last_seen >= idle * LAST_SEEN_STEP
        and request.headers.get(BACKGROUND_HEADER) != "1"
        and endpoint != "static"
    ):
        session["last_seen"] = now
    return False


def _session_timeout_meta() -> str:
    """What js/session-timeout.js needs: idle limit, warning lead and seconds until each limit."""
    import json

    idle = current_app.config["IDLE_TIMEOUT"].total_seconds()
    absolute = current_app.config["ABSOLUTE_TIMEOUT"].total_seconds()
    started = session.get("signed_in_at", _now().timestamp())
    return json.dumps(
        {
            "idle": int(idle),
            "warning": int(current_app.config.get("SESSION_WARNING_SECONDS", 120)),
            "absolute_left": max(0, int(started + absolute - _now().timestamp())),
        }
    )


def start_session(user) -> None:
    """A fresh session at sign-in (and after a password change)."""
    from flask_login import login_user

    service_id = session.get("service_id")
    session.clear()
    login_user(user)
    now = _now().timestamp()
    session["signed_in_at"] = now
    session["last_seen"] = now
    if service_id in user.service_ids:
        session["service_id"] = service_id
    session.permanent = True


_SECURITY_HEADERS = (
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
    for name, value in _SECURITY_HEADERS:
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


def roles_required(*roles: str):
    """Allow only the given roles; anyone else gets 403 and the denial is audited."""

    def decorator(view):
        @wraps(view)
        def wrapped(*args, **kwargs):
            if not current_user.is_authenticated:
                return _unauthorized()
            if current_user.role not in roles:
                deny(f"role {current_user.role} may not use {request.endpoint}")
            return view(*args, **kwargs)

        wrapped.allowed_roles = roles  # read by the role x route test
        return wrapped

    return decorator


def allowed_roles(app: Flask, endpoint: str) -> tuple[str, ...] | None:
    """The roles that may use an endpoint, or None when every signed-in role may."""
    view = app.view_functions.get(endpoint)
    roles = getattr(view, "allowed_roles", None)
    blueprint_roles = ROLE_RESTRICTED_BLUEPRINTS.get(endpoint.split(".")[0])
    if roles and blueprint_roles:
        return tuple(r for r in roles if r in blueprint_roles)
    return roles or blueprint_roles


def deny(reason: str, status: int = 403):
    """Audit a permission denial, then abort."""
    from portal.audit import events as audit

    audit.record("permission_denied", detail=f"{request.method} {request.path}: {reason}")
    db.session.commit()
    abort(status)
