"""Find a patient (issue 18): the search is posted, never put in a URL (URLs reach access logs,
proxy logs and browser history), and audited. An NHS number that finds one patient opens their
record; one that finds nobody offers to register them."""

from __future__ import annotations

from flask import redirect, render_template, request, url_for
from flask_login import current_user

from portal import clock, policy
from portal.access import require_current_service
from portal.extensions import db
from portal.journey import search as patient_search
from portal.journey.routes import bp
from portal.security import current_actor


@bp.route("/patients/find", methods=["GET", "POST"])
def find_patient():
    service = require_current_service()
    search = None
    status = 200
    if request.method == "POST":
        search = patient_search.read(request.form)
        if search.errors:
            status = 422
        else:
            patient_search.run(current_actor(), service, search, clock.today())
            db.session.commit()
            if search.by == ["nhs_number"] and len(search.results) == 1:
                found = search.results[0].patient
                return redirect(url_for("journey.patient", patient_id=found.id), 303)
    not_found = (
        search.criteria["nhs_number"]
        if search is not None and not search.errors and search.by == ["nhs_number"]
        else None
    )
    return render_template(
        "journey/find.html",
        service=service,
        form=request.form,
        search=search,
        errors=search.errors if search is not None else {},
        not_found=not_found,
        today=clock.today(),
        may_edit=policy.may(current_user, "change_records", service),
    ), status
