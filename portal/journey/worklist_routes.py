"""Worklists (issue 18): each list sorted, filtered and paged; an A4 print view and, for leads, a
CSV download of a whole list. Sorting and filters that identify nobody are links that can be
bookmarked; a filter by NHS number or name is posted and never put in a URL (sorting, paging,
printing and downloading a list filtered that way post the filter again). A number or name given
in a query string is ignored. Every view and download is audited."""

from __future__ import annotations

from flask import Response, abort, render_template, request

from portal import clock
from portal.access import require_current_service
from portal.extensions import db
from portal.journey import history, worklist_files, worklists
from portal.journey.routes import bp
from portal.security import current_actor, is_htmx, require


@bp.get("/worklists")
def worklist_index():
    service = require_current_service()
    return render_template(
        "journey/worklists.html",
        service=service,
        counts=worklists.counts(service, clock.today()),
    )


def _chosen(key: str):
    service = require_current_service()
    chosen = worklists.WORKLISTS.get(key)
    if chosen is None:
        abort(404)
    posted = request.method == "POST"
    wanted = worklists.choices(request.form if posted else request.args, posted=posted)
    return service, chosen, wanted


def _record_view(service, result: worklists.Page, how: str) -> None:
    """A worklist page is a view of each patient shown (security.md; journey/history.py)."""
    history.record_list_view(
        current_actor(),
        service,
        f"worklist {result.worklist.key}, {how}page {result.page} of {result.pages}",
        [row.patient_id for row in result.rows],
    )


@bp.route("/worklists/<key>", methods=["GET", "POST"])
def worklist(key: str):
    """A worklist, sorted, filtered and paged."""
    service, chosen, wanted = _chosen(key)
    result = worklists.page(chosen, service, clock.today(), **wanted)
    _record_view(service, result, "")
    db.session.commit()
    template = "journey/_worklist_table.html" if is_htmx() else "journey/worklist.html"
    return render_template(template, service=service, page=result, worklists=worklists.WORKLISTS)


@bp.route("/worklists/<key>/print", methods=["GET", "POST"])
def worklist_print(key: str):
    """The whole list (as sorted and filtered) laid out for A4 paper."""
    service, chosen, wanted = _chosen(key)
    wanted.update(page_number=1, page_size=worklists.WHOLE_LIST)
    result = worklists.page(chosen, service, clock.today(), **wanted)
    _record_view(service, result, "print view, ")
    db.session.commit()
    return render_template(
        "journey/worklist_print.html", service=service, page=result, today=clock.today()
    )


@bp.route("/worklists/<key>/download", methods=["GET", "POST"])
def worklist_download(key: str):
    """The whole list as CSV, for leads (patient-level data: audited as an export)."""
    service, chosen, wanted = _chosen(key)
    require("export_patient_data", service)
    wanted.update(page_number=1, page_size=worklists.WHOLE_LIST)
    result = worklists.page(chosen, service, clock.today(), **wanted)
    worklist_files.record_download(current_actor(), service, result)
    db.session.commit()
    filename = f"{service.code.lower()}-{chosen.key}-{clock.today().isoformat()}.csv"
    return Response(
        worklist_files.csv_text(result),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
