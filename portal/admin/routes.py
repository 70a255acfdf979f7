"""Administration: user accounts, roles and memberships; FLS services."""

from __future__ import annotations

from flask import Blueprint, abort, current_app, flash, redirect, render_template, url_for
from sqlalchemy import select
from wtforms import SelectChoice

from portal.accounts import users as accounts
from portal.admin import service_directory
from portal.admin.forms import ConfirmForm, EditServiceForm, EditUserForm, ServiceForm, UserForm
from portal.extensions import db
from portal.models import Service, User
from portal.security import current_actor, requires

bp = Blueprint("admin", __name__)


def _all_services() -> list[Service]:
    return list(db.session.scalars(select(Service).order_by(Service.code)))


def _service_choices() -> list[SelectChoice]:
    return [SelectChoice(s.id, f"{s.code} - {s.name}") for s in _all_services()]


def _chosen_services(ids: list[int]) -> list[Service]:
    return [s for s in _all_services() if s.id in set(ids or [])]


def _get_or_404(model, record_id: int):
    record = db.session.get(model, record_id)
    if record is None:
        abort(404)
    return record


@bp.get("/users")
@requires("manage_accounts")
def users():
    rows = db.session.scalars(select(User).order_by(User.active.desc(), User.email))
    return render_template("admin/users.html", users=list(rows))


@bp.route("/users/new", methods=["GET", "POST"])
@requires("manage_accounts")
def new_user():
    form = UserForm()
    form.services.choices = _service_choices()
    if form.validate_on_submit():
        try:
            user = accounts.create_user(
                current_actor(),
                form.email.data,
                form.display_name.data,
                form.role.data,
                _chosen_services(form.services.data),
            )
            token = accounts.issue_setup_token(user, current_app.config["SETUP_LINK_HOURS"])
        except accounts.AccountError as error:
            getattr(form, error.field or "email").errors.append(str(error))
        else:
            db.session.commit()
            return render_template("admin/setup_link.html", user=user, token=token, new=True)
    return render_template("admin/user_form.html", form=form, user=None)


@bp.route("/users/<int:user_id>", methods=["GET", "POST"])
@requires("manage_accounts")
def edit_user(user_id: int):
    user = _get_or_404(User, user_id)
    form = EditUserForm(obj=user)
    form.services.choices = _service_choices()
    if not form.is_submitted():
        form.services.data = [s.id for s in user.services]
    # The email is the login: it is shown, not edited, so it cannot be changed by a posted field.
    form.email.data = user.email
    if form.validate_on_submit():
        try:
            changes = accounts.update_user(
                current_actor(),
                user,
                display_name=form.display_name.data,
                role=form.role.data,
                services=_chosen_services(form.services.data),
                active=form.active.data,
            )
        except accounts.AccountError as error:
            # Nothing was changed; a refused change of one's own account is kept in the trail.
            db.session.commit()
            getattr(form, error.field or "role").errors.append(str(error))
        else:
            db.session.commit()
            flash(f"Saved {user.email}." if changes else f"No changes to {user.email}.", "success")
            return redirect(url_for("admin.users"))
    return render_template("admin/user_form.html", form=form, user=user, confirm=ConfirmForm())


@bp.post("/users/<int:user_id>/reset-password")
@requires("manage_accounts")
def reset_password(user_id: int):
    user = _get_or_404(User, user_id)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    token = accounts.reset_password(current_actor(), user, current_app.config["SETUP_LINK_HOURS"])
    db.session.commit()
    return render_template("admin/setup_link.html", user=user, token=token, new=False)


@bp.get("/services")
@requires("manage_services")
def services():
    return render_template("admin/services.html", services=_all_services())


@bp.route("/services/new", methods=["GET", "POST"])
@requires("manage_services")
def new_service():
    form = ServiceForm()
    if form.validate_on_submit():
        try:
            service = service_directory.add_service(
                current_actor(),
                form.code.data,
                form.name.data,
                form.nation.data,
                form.expected_caseload.data,
            )
        except service_directory.ServiceError as error:
            getattr(form, error.field or "code").errors.append(str(error))
        else:
            db.session.commit()
            flash(f"Added service {service.code}.", "success")
            return redirect(url_for("admin.services"))
    return render_template("admin/service_form.html", form=form, service=None)


@bp.route("/services/<int:service_id>", methods=["GET", "POST"])
@requires("manage_services")
def edit_service(service_id: int):
    service = _get_or_404(Service, service_id)
    form = EditServiceForm(obj=service)
    form.code.data = service.code  # the code identifies the service's records: not editable
    if form.validate_on_submit():
        try:
            changes = service_directory.update_service(
                current_actor(),
                service,
                name=form.name.data,
                nation=form.nation.data,
                expected_caseload=form.expected_caseload.data,
                active=form.active.data,
            )
        except service_directory.ServiceError as error:
            getattr(form, error.field or "name").errors.append(str(error))
        else:
            db.session.commit()
            flash(f"Saved {service.code}." if changes else "No changes.", "success")
            return redirect(url_for("admin.services"))
    return render_template("admin/service_form.html", form=form, service=service)
