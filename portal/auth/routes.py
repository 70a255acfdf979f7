"""Sign-in, sign-out, the one-time password link and changing one's own password."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, logout_user

from portal.auth.forms import ChangePasswordForm, SetPasswordForm, SignInForm
from portal.extensions import db, limiter
from portal.security import start_session
from portal.services import accounts

bp = Blueprint("auth", __name__)


def _safe_next(target: str | None) -> str:
    """Only a path on this site, never another origin."""
    if target and target.startswith("/") and not target.startswith("//"):
        parts = urlsplit(target)
        if not parts.netloc and not parts.scheme:
            return target
    return url_for("main.home")


@bp.route("/sign-in", methods=["GET", "POST"])
@limiter.limit("20 per minute", methods=["POST"])
def sign_in():
    if current_user.is_authenticated:
        return redirect(url_for("main.home"))
    form = SignInForm()
    message = None
    status = 200
    if form.validate_on_submit():
        result = accounts.authenticate(
            form.email.data,
            form.password.data,
            free=current_app.config["LOGIN_THROTTLE_FREE_FAILURES"],
            max_seconds=current_app.config["LOGIN_THROTTLE_MAX_SECONDS"],
        )
        db.session.commit()
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
    accounts.sign_out(current_user._get_current_object())
    db.session.commit()
    logout_user()
    from flask import session

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
            accounts.set_password_with_token(user, form.password.data)
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
            accounts.change_password(user, form.current_password.data, form.password.data)
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
