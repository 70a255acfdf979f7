"""Sign-in, sign-out, the one-time password link and changing one's own password."""

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
from portal.accounts import users as accounts
from portal.accounts.forms import (
    ChangePasswordForm,
    EnrolForm,
    SecondFactorForm,
    SetPasswordForm,
    SignInForm,
)
from portal.audit.actor import Actor
from portal.extensions import db, limiter
from portal.models import User
from portal.security import current_actor, start_session

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
        db.session.commit()
        if result.user is not None and result.second_factor:
            _await_second_factor(result.user, request.args.get("next"))
            return redirect(url_for("auth.second_factor"))
        if result.user is not None:
            start_session(result.user)
            return redirect(_safe_next(request.args.get("next")))
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
            db.session.commit()
            start_session(user)
            flash("Your password is set. You are signed in.", "success")
            return redirect(url_for("main.home"))
    return render_template("auth/set_password.html", form=form, user=user)


@bp.route("/password", methods=["GET", "POST"])
def change_password():
    form = ChangePasswordForm()
    if form.validate_on_submit():
        user = current_user._get_current_object()
        try:
            accounts.change_password(
                current_actor(), user, form.current_password.data, form.password.data
            )
        except accounts.AccountError as error:
            target = form.current_password if error.field == "current_password" else form.password
            target.errors.append(str(error))
        else:
            db.session.commit()
            # Every other session ended; this browser gets a fresh one.
            start_session(user)
            flash("Your password has been changed. Other sessions have been signed out.", "success")
            return redirect(url_for("main.home"))
    return render_template("auth/change_password.html", form=form)


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
            clock.utcnow(),
            current_app.config["LOGIN_THROTTLE_FREE_FAILURES"],
            current_app.config["LOGIN_THROTTLE_MAX_SECONDS"],
        )
        if wait:
            form.code.errors.append(
                f"Too many failed attempts for this account. Try again in {wait} seconds."
            )
            status = 429
        else:
            signing_in = Actor.visitor(request.remote_addr).as_account(user)
            used = second_factor.verify(signing_in, user, form.code.data, clock.now())
            if used:
                accounts.complete_sign_in(signing_in, user)
                db.session.commit()
                next_url = session.get("pending_next") or url_for("main.home")
                start_session(user)
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
    """The account page for the second factor: enrol (QR code), recovery codes, remove."""
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
        )
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
def two_factor_restart():
    """Start enrolment again (a new secret), e.g. on a new phone.

    Once enrolled, a current code is needed: a borrowed session must not swap the second factor
    for the borrower's own app.
    """
    user = current_user._get_current_object()
    if second_factor.is_enrolled(user):
        form = EnrolForm()
        if not (
            form.validate_on_submit()
            and second_factor.verify(current_actor(), user, form.code.data, clock.now()) == "totp"
        ):
            db.session.rollback()
            flash("Enter a current code from your authenticator app to set up a new one.", "error")
            return redirect(url_for("auth.two_factor"))
        db.session.commit()  # the code is spent
    session["enrol_nonce"] = second_factor.new_enrolment_nonce()
    return redirect(url_for("auth.two_factor"))


def _enrolment_secret() -> str:
    """The secret being enrolled: the session cookie (readable by its holder) carries only a
    nonce; the secret is derived from it with the server's key."""
    return second_factor.enrolment_secret(
        current_app.config["SECRET_KEY"], current_user.id, session["enrol_nonce"]
    )


@bp.post("/two-factor/recovery-codes")
def two_factor_recovery_codes():
    """New recovery codes, after a current code from the app proves it is the user."""
    user = current_user._get_current_object()
    form = EnrolForm()
    if (
        form.validate_on_submit()
        and second_factor.verify(current_actor(), user, form.code.data, clock.now()) == "totp"
    ):
        codes = second_factor.regenerate_recovery_codes(current_actor(), user)
        db.session.commit()
        return render_template("auth/recovery_codes.html", codes=codes, enrolled=False)
    db.session.rollback()
    flash("Enter a current code from your authenticator app to get new recovery codes.", "error")
    return redirect(url_for("auth.two_factor"))


@bp.post("/two-factor/remove")
def two_factor_remove():
    """Turn the second factor off, only where it is optional, after a current code."""
    user = current_user._get_current_object()
    if second_factor.required_for(user, current_app.config["REQUIRE_TOTP_FOR_ALL"]):
        abort(403, description="Two-step verification is required for your account.")
    form = EnrolForm()
    if (
        form.validate_on_submit()
        and second_factor.verify(current_actor(), user, form.code.data, clock.now()) == "totp"
    ):
        second_factor.remove(current_actor(), user)
        db.session.commit()
        flash("Two-step verification is off.", "success")
    else:
        db.session.rollback()
        flash("Enter a current code from your authenticator app to turn it off.", "error")
    return redirect(url_for("auth.two_factor"))


# --- session timeouts -------------------------------------------------------------------------


@bp.post("/stay-signed-in")
def stay_signed_in():
    """The "Stay signed in" button: a request the user makes, so the idle timer starts again."""
    seconds = int(current_app.config["IDLE_TIMEOUT"].total_seconds())
    return jsonify(idle_seconds=seconds)
