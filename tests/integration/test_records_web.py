"""The import and export page: upload, preview, apply in the background, progress polling,
roles, service scoping, refusals and escaping (sign-in, CSRF and scoping stay on)."""

from __future__ import annotations

import io
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from tests.conftest import sign_in
from tests.records_csv import csv_text, nhs_number, row

DATA = Path(__file__).resolve().parents[1] / "data"
POLL = {"HX-Request": "true", "X-Background-Request": "1"}


def upload(client, content: bytes, name="clinic.csv"):
    return client.post(
        "/records/import",
        data={"file": (io.BytesIO(content), name)},
        content_type="multipart/form-data",
    )


def wait_for(db, job_id: int, statuses=("previewed", "applied", "failed"), timeout=30.0):
    from portal.models import ImportJob

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        db.session.expire_all()
        job = db.session.get(ImportJob, job_id)
        if job.status in statuses:
            return job
        time.sleep(0.05)
    raise AssertionError(f"import job {job_id} still {job.status}")


def job_id_of(response) -> int:
    assert response.status_code == 303, response.get_data(as_text=True)[:2000]
    return int(response.headers["Location"].rstrip("/").split("/")[-1])


def count_episodes(db) -> int:
    from portal.models import Episode

    return db.session.scalar(select(func.count()).select_from(Episode))


def test_upload_preview_apply_with_progress(signed_in, db, make_service):
    from portal.models import AuditEvent, Episode, Service

    service = make_service("XMP")
    client, user, _ = signed_in(role="clinician", service=service)
    assert b"Import and export" in client.get("/").data
    page = client.get("/records/")
    assert page.status_code == 200
    assert b"Export episodes as CSV" not in page.data  # exports are a lead's

    response = upload(client, (DATA / "flsdb-export-sample.csv").read_bytes(), "fls db.csv")
    job_id = job_id_of(response)
    job = wait_for(db, job_id)
    assert job.status == "previewed", job.error
    status = client.get(f"/records/import/{job_id}/progress", headers=POLL)
    html = status.get_data(as_text=True)
    assert status.status_code == 200
    assert 'id="count-added">8<' in html
    assert "Nothing has been written yet" in html
    assert count_episodes(db) == 0

    applied = client.post(f"/records/import/{job_id}/apply", data={"mode": "all"})
    assert applied.status_code == 303
    job = wait_for(db, job_id, ("applied", "failed"))
    assert job.status == "applied", job.error
    assert count_episodes(db) == 8
    page = client.get(f"/records/import/{job_id}").get_data(as_text=True)
    assert "Added 8, updated 0, unchanged 0, refused 0." in page
    assert db.session.get(Service, service.id).data_version == 1
    creators = set(db.session.scalars(select(Episode.created_by_id)))
    assert creators == {user.id}
    imported = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "import")).one()
    assert imported.user_id == user.id and "fls db.csv" in imported.detail
    assert "hx-get" not in page  # finished: no more polling


def test_running_job_polls_with_background_header(signed_in, db, make_service):
    from portal.models import ImportJob

    client, user, service = signed_in()
    job = ImportJob(
        service_id=service.id,
        user_id=user.id,
        file_name="big.csv",
        file_sha256="0" * 64,
        status="checking",
        total_rows=100000,
        processed_rows=25000,
    )
    db.session.add(job)
    db.session.commit()
    html = client.get(f"/records/import/{job.id}").get_data(as_text=True)
    assert '<progress class="portal-progress"' in html
    assert 'max="100000" value="25000"' in html
    assert "X-Background-Request" in html and 'hx-trigger="load delay:1s"' in html
    with client.session_transaction() as session:
        session["last_seen"] = last_seen = session["last_seen"] - 600
    assert client.get(f"/records/import/{job.id}/progress", headers=POLL).status_code == 200
    with client.session_transaction() as session:
        assert session["last_seen"] == last_seen  # polling does not keep the session alive


def test_keep_valid_rows_from_the_page(signed_in, db):
    client, user, service = signed_in()
    text = csv_text([row(), row(nhs_number=nhs_number(2), sex="Unknown person")])
    job_id = job_id_of(upload(client, text.encode()))
    job = wait_for(db, job_id)
    assert (job.added, job.refused) == (1, 1)
    html = client.get(f"/records/import/{job_id}").get_data(as_text=True)
    assert "<tr><td>3</td><td>sex</td><td>Sex must be one of" in html

    client.post(f"/records/import/{job_id}/apply", data={"mode": "all"})
    job = wait_for(db, job_id, ("previewed",), timeout=30)
    for _ in range(200):  # the apply thread moves it to applying, then back to previewed
        db.session.expire_all()
        if job.error:
            break
        time.sleep(0.05)
    assert job.status == "previewed" and "all or nothing" in job.error
    assert count_episodes(db) == 0

    client.post(f"/records/import/{job_id}/apply", data={"mode": "valid"})
    job = wait_for(db, job_id, ("applied", "failed"))
    assert job.status == "applied"
    assert count_episodes(db) == 1


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "The file is empty"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "not a CSV file"),
        (b"nhs_number;fracture_date\n", "separated by semicolons"),
        (b"9434765919,2024-03-01\n", "no header"),
    ],
)
def test_refused_files(signed_in, db, content, message):
    from portal.models import ImportJob

    client, _, _ = signed_in()
    response = upload(client, content)
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)
    assert db.session.scalar(select(func.count()).select_from(ImportJob)) == 0


def test_over_the_size_limit(app, signed_in):
    app.config["IMPORT_MAX_BYTES"] = 200
    client, _, _ = signed_in()
    response = upload(client, csv_text([row(), row(nhs_number=nhs_number(2))]).encode())
    assert response.status_code in (413, 422)
    assert "over the limit" in response.get_data(as_text=True)


def test_no_file_chosen(signed_in):
    client, _, _ = signed_in()
    response = client.post("/records/import", data={}, content_type="multipart/form-data")
    assert response.status_code == 422
    assert "Choose a CSV file" in response.get_data(as_text=True)


def test_upload_needs_csrf(signed_in):
    client, _, _ = signed_in()
    response = client.post(
        "/records/import",
        data={"file": (io.BytesIO(b"x"), "a.csv")},
        content_type="multipart/form-data",
        csrf=False,
    )
    assert response.status_code == 400


def test_injection_strings_are_data_shown_escaped(signed_in, db):
    client, _, service = signed_in()
    rows = [row(postcode='<img src=x onerror="alert(1)">'), row(nhs_number=nhs_number(2))]
    columns = (*row().keys(), "<script>alert(1)</script>")
    text = csv_text(rows, columns=columns)
    job_id = job_id_of(upload(client, text.encode(), "<b>evil.csv"))
    wait_for(db, job_id)
    html = client.get(f"/records/import/{job_id}").get_data(as_text=True)
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<b>evil" not in html and "&lt;b&gt;evil.csv" in html
    assert "<img src=x" not in html


def test_roles_and_scoping(client, db, make_service, make_user, signed_in):
    from portal.models import ImportJob

    other = make_service("LDS")
    stranger_job = ImportJob(
        service_id=other.id, file_name="x.csv", file_sha256="0" * 64, status="previewed"
    )
    db.session.add(stranger_job)
    db.session.commit()
    client, user, service = signed_in(role="clinician")
    assert client.get(f"/records/import/{stranger_job.id}").status_code == 404
    assert (
        client.post(f"/records/import/{stranger_job.id}/apply", data={"mode": "all"}).status_code
        == 404
    )
    assert client.get("/records/export.csv").status_code == 403

    admin = make_user(role="admin", services=[service])
    client.post("/auth/sign-out")
    sign_in(client, admin)
    assert client.get("/records/").status_code == 403


def test_opening_another_services_import_job_is_refused_and_audited(db, make_service, signed_in):
    """Issue 23, finding 8: every way into another service's import job answers 404 and leaves
    a permission_denied event."""
    from sqlalchemy import select

    from portal.models import AuditEvent, ImportJob

    other = make_service("LDS")
    job = ImportJob(
        service_id=other.id, file_name="x.csv", file_sha256="0" * 64, status="previewed"
    )
    db.session.add(job)
    db.session.commit()
    job_id = job.id
    client, user, _service = signed_in(role="clinician")
    answers = [
        client.get(f"/records/import/{job_id}"),
        client.get(f"/records/import/{job_id}/progress", headers=POLL),
        client.post(f"/records/import/{job_id}/apply", data={"mode": "all"}),
        client.post(f"/records/import/{job_id}/discard", data={}),
    ]
    assert [a.status_code for a in answers] == [404] * 4
    denied = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "permission_denied")
    ).all()
    assert len(denied) == 4
    assert all(e.user_id == user.id and f"/records/import/{job_id}" in e.detail for e in denied)
    assert db.session.get(ImportJob, job_id).status == "previewed"


def test_lead_exports_csv_and_it_is_audited(signed_in, db, runner):
    from portal.models import AuditEvent

    client, lead, service = signed_in(role="lead")
    path = DATA / "canonical-sample.csv"
    text = path.read_text().replace("XMP,", "BRD,")
    job_id = job_id_of(upload(client, text.encode()))
    wait_for(db, job_id)
    client.post(f"/records/import/{job_id}/apply", data={"mode": "all"})
    assert wait_for(db, job_id, ("applied", "failed")).status == "applied"
    assert b"Export episodes as CSV" in client.get("/records/").data
    response = client.get("/records/export.csv")
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert 'filename="BRD-episodes.csv"' in response.headers["Content-Disposition"]
    assert response.headers["Cache-Control"] == "no-store"
    exported = response.get_data(as_text=True)
    cli = runner.invoke(args=["records", "export", "--service", "BRD"]).stdout
    assert exported == cli
    assert len(exported.splitlines()) == 9
    events = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "export").order_by(AuditEvent.id)
    ).all()
    assert [e.user_id for e in events] == [lead.id, None]


def test_import_limit_is_its_own_not_the_app_wide_one(app, signed_in, db):
    app.config["MAX_CONTENT_LENGTH"] = 1000
    app.config["IMPORT_MAX_BYTES"] = 50 * 1024
    client, _, _ = signed_in()
    text = csv_text([row(nhs_number=nhs_number(n)) for n in range(30)])
    assert 1000 < len(text) < 50 * 1024
    job_id = job_id_of(upload(client, text.encode()))
    assert wait_for(db, job_id).added == 30


def test_far_over_the_limit_is_refused_before_reading(app, signed_in, db):
    from portal.models import ImportJob

    app.config["IMPORT_MAX_BYTES"] = 100
    client, _, _ = signed_in()
    response = upload(client, b"nhs_number,fracture_date\n" + b"x" * 200_000)
    assert response.status_code == 413
    assert "over the limit of 100 bytes" in response.get_data(as_text=True)
    assert db.session.scalar(select(func.count()).select_from(ImportJob)) == 0


def test_unexpected_failure_ends_the_job_and_logs_no_patient_data(
    signed_in, db, monkeypatch, caplog
):
    from portal.records import importing as record_import

    def broken(*args, **kwargs):
        raise RuntimeError(f"row of {nhs_number(1)}")

    monkeypatch.setattr(record_import, "check_file", broken)
    client, _, _ = signed_in()
    job_id = job_id_of(upload(client, csv_text([row()]).encode()))
    job = wait_for(db, job_id)
    assert job.status == "failed"
    assert job.error == "The import failed unexpectedly: nothing was written."
    from portal.records import uploads

    assert not uploads.is_kept(job_id)
    assert nhs_number(1) not in caplog.text
    assert "RuntimeError" in caplog.text


def test_an_upload_is_kept_in_the_database_not_on_this_machine(app, signed_in, db, tmp_path):
    """Issue 21: any instance's worker reads the upload; no copy stays on the web host's disk
    (issue 23, finding 10: nor readable by other local accounts while it passes through)."""
    import tempfile

    from portal.records import uploads

    before = set(Path(tempfile.gettempdir()).glob("fls-*"))
    client, _user, _service = signed_in(role="clinician")
    text = csv_text([row(nhs_number=nhs_number(n)) for n in range(5)])
    job_id = job_id_of(upload(client, text.encode()))
    job = wait_for(db, job_id)
    assert job.status == "previewed"
    assert b"".join(uploads.chunks(job_id)) == text.encode()
    assert not (Path(app.instance_path) / "imports").exists()
    assert set(Path(tempfile.gettempdir()).glob("fls-*")) == before
