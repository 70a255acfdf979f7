"""The audit page: admins see every event, leads their current service's (security.md).

Read-only by design: this blueprint has GET routes only, and no route of the portal edits or
deletes an audit event.
"""

from __future__ import annotations

from flask import Blueprint, render_template, request
from flask_login import current_user

from portal.access import current_service
from portal.audit import trail as audit_trail
from portal.audit.forms import AuditFilterForm
from portal.security import deny, requires

bp = Blueprint("audit", __name__)


@bp.get("/")
@requires("read_audit_trail")
def index():
    form = AuditFilterForm(request.args)
    filters = audit_trail.AuditFilters()
    if request.args and form.validate():
        filters = audit_trail.AuditFilters(
            user=form.user.data or None,
            entity_type=form.entity_type.data or None,
            entity_id=form.entity_id.data,
            action=form.action.data or None,
            date_from=form.date_from.data,
            date_to=form.date_to.data,
        )
    asked = request.args.get("page", "1")
    page_number = int(asked) if asked.isdigit() else 1
    try:
        page = audit_trail.search(
            current_user._get_current_object(), current_service(), filters, page_number
        )
    except audit_trail.AuditAccessError as error:
        deny(str(error))
    form.entity_type.choices = [("", "Any")] + [(t, t) for t in page.entity_types]
    form.action.choices = [("", "Any")] + [(a, a.replace("_", " ")) for a in page.actions]
    args = {k: v for k, v in request.args.items() if k != "page" and v}
    return render_template("audit/index.html", form=form, page=page, args=args)
