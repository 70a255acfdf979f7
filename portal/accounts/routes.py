"""Sign-in, sign-out, the one-time password link, confirming it is you, one's own password, second
factor and sessions."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user, logout_user

from portal import clock
from portal.accounts import second_factor
from portal.accounts import sessions as user_sessions
from portal.accounts import users as accounts
from portal.accounts.forms import (
    ChangePasswordForm,
    ConfirmIdentityForm,
    EnrolForm,
    SecondFactorForm,
    SetPasswordForm,
    SignInForm,
)
from portal.audit.actor import Actor
from portal.extensions import db, limiter
from portal.models import User
from portal.security import (
    confirm_first,
    current_actor,
    current_session_record,
    recently_authenticated,
    requires_recent_authentication,
    start_session,
)

bp = Blueprint("auth", __name__)


def _safe_next(target: str | None) -> str:
    """Only a path on this site, never another origin."""
    if target and target.startswith("/") and not target.startswith("//"):
        parts = urlsplit(target)
        if not parts.netloc and not parts.scheme:
            return target
    return url_for("main.home")


@bp.route("/sign-in", methods=["GET", "POST"])
@limiter.limit(
    "20 per minute",
    methods=["POST"],
    error_message="Too many sign-in attempts from this address. Wait a minute and try again.",
)
def sign_in():
    if current_user.is_authenticated:
        return redirect(url_for("main.home"))
    form = SignInForm()
    message = None
    status = 200
    if form.validate_on_submit():
        result = accounts.authenticate(
            Actor.visitor(request.remote_addr),
            form.email.data,
            form.password.data,
            free=current_app.config["LOGIN_THROTTLE_FREE_FAILURES"],
            max_seconds=current_app.config["LOGIN_THROTTLE_MAX_SECONDS"],
        )
        if result.user is not None and result.second_factor:
            db.session.commit()
            _await_second_factor(result.user, request.args.get("next"))
            return redirect(url_for("auth.second_factor"))
        if result.user is not None:
            start_session(result.user)
            db.session.commit()
            return redirect(_safe_next(request.args.get("next")))
        db.session.commit()
        message = result.message
        status = 429 if result.wait_seconds else 200
    elif request.method == "POST":
        status = 200
    return render_template("auth/sign_in.html", form=form, message=message), status


@bp.post("/sign-out")
def sign_out():
    accounts.sign_out(current_actor(), current_user._get_current_object())
    db.session.commit()
    logout_user()
    session.clear()
    flash("You have signed out.", "info")
    return redirect(url_for("auth.sign_in"))


@bp.route("/set-password/<token>", methods=["GET", "POST"])
def set_password(token: str):
    user = accounts.user_for_setup_token(token)
    if user is None:
        return render_template("auth/set_password_invalid.html"), 404
    form = SetPasswordForm()
    if form.validate_on_submit():
        try:
            accounts.set_password_with_token(
                Actor.visitor(request.remote_addr).as_account(user), user, form.password.data
            )
        except accounts.AccountError as error:
            form.password.errors.append(str(error))
        else:
            start_session(user)
            db.session.commit()
            flash("Your password is set. You are signed in.", "success")
            return redirect(url_for("main.home"))
    return render_template("auth/set_password.html", form=form, user=user)


@bp.route("/password", methods=["GET", "POST"])
@requires_recent_authentication()
def change_password():
    form = ChangePasswordForm()
    if form.validate_on_submit():
        user = current_user._get_current_object()
        try:
            accounts.change_password(current_actor(), user, form.password.data)
        except accounts.AccountError as error:
            form.password.errors.append(str(error))
        else:
            # Every other session ended; this browser gets a fresh one.
            start_session(user)
            db.session.commit()
            flash("Your password has been changed. Other sessions have been signed out.", "success")
            return redirect(url_for("main.home"))
    return render_template("auth/change_password.html", form=form)


@bp.route("/confirm", methods=["GET", "POST"])
@limiter.limit(
    "10 per minute",
    methods=["POST"],
    error_message="Too many attempts from this address. Wait a minute and try again.",
)
def confirm_identity():
    """Confirm it is you: the password, and a second-factor code where enrolled, asked again
    before a change to how the user signs in or to where they are signed in."""
    user = current_user._get_current_object()
    enrolled = second_factor.is_enrolled(user)
    form = ConfirmIdentityForm()
    if not enrolled:
        del form.code
    status = 200
    if form.validate_on_submit():
        result = accounts.reauthenticate(
            current_actor(),
            user,
            current_session_record(),
            form.password.data,
            form.code.data if enrolled else None,
            free=current_app.config["LOGIN_THROTTLE_FREE_FAILURES"],
            max_seconds=current_app.config["LOGIN_THROTTLE_MAX_SECONDS"],
        )
        db.session.commit()
        if result.user is not None:
            return redirect(_safe_next(request.args.get("next")))
        form.password.errors.append(result.message or "")
        status = 429 if result.wait_seconds else 200
    return render_template(
        "auth/confirm_identity.html",
        form=form,
        minutes=current_app.config["REAUTHENTICATION_MINUTES"],
    ), status


# --- the second factor ------------------------------------------------------------------------

# How long the password step stays valid while the user fetches their phone.
PENDING_SECONDS = 300


def _await_second_factor(user: User, next_url: str | None) -> None:
    """The password was right: remember who is half-way, in a fresh session without sign-in."""
    session.clear()
    session["pending_user"] = user.get_id()
    session["pending_at"] = clock.now().timestamp()
    session["pending_next"] = _safe_next(next_url)


def _pending_user() -> User | None:
    pending = session.get("pending_user")
    started = session.get("pending_at", 0)
    if not pending or clock.now().timestamp() - started > PENDING_SECONDS:
        return None
    user_id, _, version = pending.partition(":")
    user = db.session.get(User, int(user_id))
    if user is None or not user.active or str(user.session_version) != version:
        return None
    return user


@bp.route("/second-factor", methods=["GET", "POST"], endpoint="second_factor")
@limiter.limit(
    "10 per minute",
    methods=["POST"],
    error_message="Too many attempts at the code from this address. Wait a minute and try again.",
)
def second_factor_step():
    """The second step of sign-in: a TOTP code or a recovery code; the session starts after it."""
    user = _pending_user()
    if user is None:
        session.pop("pending_user", None)
        flash("Sign in again: the sign-in was not finished in time.", "info")
        return redirect(url_for("auth.sign_in"))
    form = SecondFactorForm()
    status = 200
    if form.validate_on_submit():
        wait = accounts.throttle_wait(
            user,
            request.remote_addr,
            current_app.config["LOGIN_THROTTLE_FREE_FAILURES"],
            current_app.config["LOGIN_THROTTLE_MAX_SECONDS"],
        )
        if wait:
            form.code.errors.append(accounts.throttled_message(wait))
            status = 429
        else:
            signing_in = Actor.visitor(request.remote_addr).as_account(user)
            used = second_factor.verify(signing_in, user, form.code.data, clock.now())
            if used:
                accounts.complete_sign_in(signing_in, user)
                next_url = session.get("pending_next") or url_for("main.home")
                start_session(user)
                db.session.commit()
                if used == "recovery":
                    flash(
                        "You signed in with a recovery code; it cannot be used again. "
                        f"{second_factor.remaining_recovery_codes(user)} recovery codes are left.",
                        "info",
                    )
                return redirect(_safe_next(next_url))
            accounts.second_factor_failed(signing_in, user)
            db.session.commit()
            form.code.errors.append("Enter a correct security code. A code works only once.")
    return render_template("auth/second_factor.html", form=form), status


@bp.route("/two-factor", methods=["GET", "POST"])
def two_factor():
    """The account page for the second factor: enrol (QR code), recovery codes, remove. Showing
    it needs nothing more than sign-in; enrolling asks the user to confirm it is them first."""
    user = current_user._get_current_object()
    required = second_factor.required_for(user, current_app.config["REQUIRE_TOTP_FOR_ALL"])
    form = EnrolForm()
    if second_factor.is_enrolled(user) and "enrol_nonce" not in session:
        return render_template(
            "auth/two_factor.html",
            user=user,
            form=form,
            required=required,
            remaining=second_factor.remaining_recovery_codes(user),
            old_codes=second_factor.has_old_recovery_codes(user),
        )
    if not recently_authenticated():
        return confirm_first()
    if "enrol_nonce" not in session:
        session["enrol_nonce"] = second_factor.new_enrolment_nonce()
    secret = _enrolment_secret()
    if form.validate_on_submit():
        codes = second_factor.enrol(current_actor(), user, secret, form.code.data, clock.now())
        if codes is None:
            form.code.errors.append("Enter the code your app shows now: that code is not right")
        else:
            db.session.commit()
            session.pop("enrol_nonce", None)
            return render_template("auth/recovery_codes.html", codes=codes, enrolled=True)
    return render_template(
        "auth/two_factor_enrol.html",
        form=form,
        required=required,
        secret_groups=[secret[i : i + 4] for i in range(0, len(secret), 4)],
    )


@bp.get("/two-factor/qr.svg")
@requires_recent_authentication()
def two_factor_qr():
    """The QR code of the secret being enrolled, made on the server as SVG."""
    if "enrol_nonce" not in session:
        abort(404)
    secret = _enrolment_secret()
    uri = second_factor.provisioning_uri(secret, current_user.email)
    response = current_app.response_class(second_factor.qr_svg(uri), mimetype="image/svg+xml")
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/two-factor/restart")
@requires_recent_authentication(back="auth.two_factor")
def two_factor_restart():
    """Start enrolment again (a new secret), e.g. on a new phone, after the user confirmed it is
    them: a borrowed session must not swap the second factor for the borrower's own app."""
    session["enrol_nonce"] = second_factor.new_enrolment_nonce()
    return redirect(url_for("auth.two_factor"))


def _enrolment_secret() -> str:
    """The secret being enrolled: the session cookie (readable by its holder) carries only a
    nonce; the secret is derived from it with the server's key."""
    return second_factor.enrolment_secret(
        current_app.config["SECRET_KEY"], current_user.id, session["enrol_nonce"]
    )


@bp.post("/two-factor/recovery-codes")
@requires_recent_authentication(back="auth.two_factor")
def two_factor_recovery_codes():
    """New recovery codes (the old ones stop working), after the user confirmed it is them."""
    user = current_user._get_current_object()
    if not second_factor.is_enrolled(user):
        return redirect(url_for("auth.two_factor"))
    codes = second_factor.regenerate_recovery_codes(current_actor(), user)
    db.session.commit()
    return render_template("auth/recovery_codes.html", codes=codes, enrolled=False)


@bp.post("/two-factor/remove")
@requires_recent_authentication(back="auth.two_factor")
def two_factor_remove():
    """Turn the second factor off, only where it is optional, after the user confirmed it is
    them."""
    user = current_user._get_current_object()
    if second_factor.required_for(user, current_app.config["REQUIRE_TOTP_FOR_ALL"]):
        abort(403, description="Two-step verification is required for your account.")
    second_factor.remove(current_actor(), user)
    db.session.commit()
    flash("Two-step verification is off.", "success")
    return redirect(url_for("auth.two_factor"))


# --- where you are signed in ------------------------------------------------------------------


@bp.get("/sessions")
def sessions_page():
    """Where you are signed in: each open session, with a way to end one or all the others."""
    record = current_session_record()
    return render_template(
        "auth/sessions.html",
        sessions=user_sessions.open_sessions(current_user._get_current_object()),
        this_session=record.id if record is not None else None,
        describe=user_sessions.describe_browser,
    )


@bp.post("/sessions/<int:session_id>/end")
@requires_recent_authentication(back="auth.sessions_page")
def end_session(session_id: int):
    record = current_session_record()
    if record is not None and session_id == record.id:
        abort(400, description="Use Sign out to end this browser's session.")
    if not user_sessions.end(current_actor(), current_user._get_current_object(), session_id):
        abort(404)
    db.session.commit()
    flash("That session has ended: the browser is signed out.", "success")
    return redirect(url_for("auth.sessions_page"))


@bp.post("/sessions/end-others")
@requires_recent_authentication(back="auth.sessions_page")
def end_other_sessions():
    ended = user_sessions.end_others(
        current_actor(), current_user._get_current_object(), current_session_record().id
    )
    db.session.commit()
    flash(
        f"Signed out everywhere else ({ended} session{'' if ended == 1 else 's'} ended).",
        "success",
    )
    return redirect(url_for("auth.sessions_page"))


# --- session timeouts -------------------------------------------------------------------------


@bp.post("/stay-signed-in")
def stay_signed_in():
    """The "Stay signed in" button: a request the user makes, so the idle timer starts again."""
    seconds = int(current_app.config["IDLE_TIMEOUT"].total_seconds())
    return jsonify(idle_seconds=seconds)
