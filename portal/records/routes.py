"""Import and export of episodes as CSV: upload, preview, apply (on the job queue's workers),
export."""

from __future__ import annotations

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from flask_login import current_user

from portal.access import require_current_service, switch_service
from portal.extensions import db, limiter
from portal.models import ImportJob
from portal.records import export as record_export
from portal.records import jobs as import_jobs
from portal.records.csv_files import FileRefused, size_text
from portal.records.forms import ApplyForm, DiscardForm, UploadForm
from portal.security import current_actor, deny, is_htmx, require, requires

bp = Blueprint("records", __name__)
# Room for the multipart envelope around a file that is just under the limit.
_ENVELOPE = 64 * 1024


@bp.url_value_preprocessor
def _import_size_limit(endpoint, values):
    """IMPORT_MAX_BYTES, not the app-wide MAX_CONTENT_LENGTH, limits an upload. Set here
    because url value preprocessors run before the CSRF check reads the form."""
    if endpoint == "records.upload":
        request.max_content_length = current_app.config["IMPORT_MAX_BYTES"] + _ENVELOPE


@bp.errorhandler(413)
def _too_large(error):
    limit = current_app.config["IMPORT_MAX_BYTES"]
    return _page(
        UploadForm(formdata=None),
        f"The file is over the limit of {size_text(limit)}",
        413,
    )


def _page(form: UploadForm, error: str | None = None, status: int = 200):
    service = require_current_service()
    jobs = import_jobs.recent_jobs(service)
    return (
        render_template(
            "records/index.html",
            form=form,
            upload_error=error,
            service=service,
            jobs=jobs,
            max_size=size_text(current_app.config["IMPORT_MAX_BYTES"]),
        ),
        status,
    )


@bp.get("/")
@requires("import_records")
def index():
    return _page(UploadForm())


@bp.post("/import")
@requires("import_records")
@limiter.limit(
    lambda: current_app.config["UPLOAD_RATE_LIMIT"],
    scope="upload",
    error_message="Too many uploads from this address. Wait a minute and try again.",
)
def upload():
    service = require_current_service()
    require("import_records", service)
    limit = current_app.config["IMPORT_MAX_BYTES"]
    if (request.content_length or 0) > limit + _ENVELOPE:
        return _page(
            UploadForm(formdata=None),
            f"The file is over the limit of {size_text(limit)}",
            413,
        )
    form = UploadForm()
    if not form.validate_on_submit():
        abort(400)
    upload = form.file.data
    if upload is None or not getattr(upload, "filename", ""):
        return _page(form, "Choose a CSV file to import", 422)
    try:
        job = import_jobs.receive_upload(
            current_actor(),
            upload.stream,
            upload.filename,
            service=service,
            max_bytes=limit,
        )
    except FileRefused as error:
        return _page(form, str(error), 422)
    db.session.commit()
    import_jobs.queue(job, apply=False, actor=current_actor())
    return redirect(url_for("records.job", job_id=job.id), 303)


def _job(job_id: int) -> ImportJob:
    """An import of one of the user's services (404 otherwise, as for any record)."""
    job = db.session.get(ImportJob, job_id)
    if job is None:
        abort(404)
    if job.service_id is None or job.service_id not in current_user.service_ids:
        deny("import job of a service the user does not belong to", status=404)
    if job.service_id != require_current_service().id:
        switch_service(job.service_id)
    return job


def _job_context(job: ImportJob) -> dict:
    return {
        "job": job,
        "apply_form": ApplyForm(),
        "discard_form": DiscardForm(),
        "percent": int(100 * job.processed_rows / job.total_rows) if job.total_rows else 0,
        "stopped": (import_jobs.ABANDONED, import_jobs.UNEXPECTED, import_jobs.EXPIRED),
    }


@bp.get("/import/<int:job_id>")
@requires("import_records")
def job(job_id: int):
    return render_template("records/job.html", **_job_context(_job(job_id)))


@bp.get("/import/<int:job_id>/progress")
@requires("import_records")
def progress(job_id: int):
    """The status fragment the job page polls (with X-Background-Request: 1) while it runs."""
    job = _job(job_id)
    if not is_htmx():
        return redirect(url_for("records.job", job_id=job.id))
    return render_template("records/_job_status.html", **_job_context(job))


@bp.post("/import/<int:job_id>/apply")
@requires("import_records")
def apply(job_id: int):
    job = _job(job_id)
    require("import_records", require_current_service())
    form = ApplyForm()
    if not form.validate_on_submit():
        abort(400)
    actor = current_actor()
    if import_jobs.request_apply(actor, job, keep_valid=form.mode.data == "valid"):
        db.session.commit()
        import_jobs.queue(job, apply=True, actor=actor)
    return redirect(url_for("records.job", job_id=job.id), 303)


@bp.post("/import/<int:job_id>/discard")
@requires("import_records")
def discard(job_id: int):
    job = _job(job_id)
    if not DiscardForm().validate_on_submit():
        abort(400)
    import_jobs.discard(current_actor(), job)
    db.session.commit()
    return redirect(url_for("records.index"), 303)


@bp.get("/export.csv")
@requires("export_patient_data")
def export():
    """The current service's episodes as canonical CSV (a lead's: dataset.md, roles)."""
    service = require_current_service()
    count = record_export.count_episodes(service)
    record_export.record_export(current_actor(), service, count, via="page")
    db.session.commit()
    response = Response(stream_with_context(record_export.export_csv(service)), mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="{service.code}-episodes.csv"'
    return response


@bp.get("/export-flsdb.csv")
@requires("export_patient_data")
def export_flsdb():
    """The current service's episodes as the file FLS-DB takes in (a lead's)."""
    from portal.records import flsdb

    service = require_current_service()
    count = record_export.count_episodes(service)
    record_export.record_export(current_actor(), service, count, via="page", kind="FLS-DB CSV")
    db.session.commit()
    # Streamed from the database as it is written, as the canonical export: never whole in
    # the web worker's memory.
    response = Response(
        stream_with_context(flsdb.flsdb_file(service)), mimetype="text/csv; charset=windows-1252"
    )
    response.headers["Content-Disposition"] = f'attachment; filename="{service.code}-flsdb.csv"'
    return response
