"""Every use of patient data is attributable to a person (security.md, audit trail): views of a
patient's record, exports, imports, sign-in, sign-out, failed sign-in and permission denials are
each recorded with the user, and for the service's records, with the service."""

from __future__ import annotations

import io

from sqlalchemy import select

from tests.conftest import TEST_PASSWORD, sign_in
from tests.integration.test_records_web import DATA, job_id_of, wait_for


def _events(db, action: str):
    from portal.models import AuditEvent

    db.session.expire_all()
    return db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)
    ).all()


def test_each_kind_of_use_is_recorded(client, db, world, make_user):
    mine, theirs, records = world
    lead = make_user(role="lead", services=[mine])

    client.post("/auth/sign-in", data={"email": lead.email, "password": "wrong-password-12"})
    assert [e.user_id for e in _events(db, "sign_in_failed")] == [lead.id]

    sign_in(client, lead)
    assert [e.user_id for e in _events(db, "sign_in")] == [lead.id]

    ids = records["BRD"]
    assert client.get(f"/patients/{ids['patient_id']}").status_code == 200
    assert client.get(f"/episodes/{ids['episode_id']}").status_code == 200
    views = _events(db, "view")
    assert len(views) == 2
    assert {(v.user_id, v.service_id, v.entity_type, v.entity_id) for v in views} == {
        (lead.id, mine.id, "patient", ids["patient_id"])
    }

    export = client.get("/records/export.csv")
    assert export.status_code == 200
    exports = _events(db, "export")
    assert [(e.user_id, e.service_id) for e in exports] == [(lead.id, mine.id)]

    upload = client.post(
        "/records/import",
        data={"file": (io.BytesIO((DATA / "flsdb-export-sample.csv").read_bytes()), "clinic.csv")},
        content_type="multipart/form-data",
    )
    job_id = job_id_of(upload)
    assert wait_for(db, job_id).status == "previewed"
    client.post(f"/records/import/{job_id}/apply", data={"mode": "all"})
    assert wait_for(db, job_id, ("applied", "failed")).status == "applied"
    imports = _events(db, "import")
    assert [(e.user_id, e.service_id) for e in imports] == [(lead.id, mine.id)]

    other = records["OTH"]
    assert client.get(f"/patients/{other['patient_id']}").status_code == 404
    denials = _events(db, "permission_denied")
    assert denials and denials[-1].user_id == lead.id
    assert f"/patients/{other['patient_id']}" in denials[-1].detail

    client.post("/auth/sign-out")
    assert [e.user_id for e in _events(db, "sign_out")] == [lead.id]
    assert TEST_PASSWORD not in "".join(
        str(e.detail) + str(e.changes) for e in _events(db, "sign_in")
    )
