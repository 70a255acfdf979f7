"""The file FLS-DB takes in (issue 19): `flask records export --format flsdb` and the leads'
download write FLS-DB's own export (question-code headers, DD/MM/YYYY, Windows-1252, its answer
wording); importing it into an empty service gives the same records, field for field. The
canonical export keeps dataset.md's columns first, the new ones after; an import never changes
an episode that is complete for the audit."""

from __future__ import annotations

import csv
import random
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from kpis import dataset as ds
from portal.audit.actor import Actor
from tests.conftest import TEST_TODAY
from tests.records_csv import csv_text, row

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "flsdb-export-sample.csv"
SAMPLE_HEADER = SAMPLE.read_text(encoding="cp1252").splitlines()[0]


def _export(runner, code: str, *options) -> bytes:
    result = runner.invoke(args=["records", "export", "--service", code, *options])
    assert result.exit_code == 0, result.output
    return result.stdout_bytes


def _records(db, service) -> dict:
    from portal.models import Episode, Patient
    from portal.records import flsdb

    db.session.expire_all()
    found = db.session.execute(
        select(Patient, Episode)
        .join(Episode, Episode.patient_id == Patient.id)
        .where(Episode.service_id == service.id, Episode.deleted_at.is_(None))
    ).all()
    return {
        (patient.nhs_number, episode.fracture_date): {
            field: getattr(patient if field in ds.PATIENT_FIELDS else episode, field)
            for field in flsdb.FIELDS
        }
        for patient, episode in found
    }


@pytest.fixture
def synthetic_service(db, make_service):
    from portal.operations import synthetic

    service = make_service("AAA")
    profile = {"id": service.id, "code": "AAA", "nation": "England"}
    profile |= {"expected_caseload": 1200, "quality": 0.6}
    start = TEST_TODAY - timedelta(days=5 * 365)
    rows = synthetic.generate(
        random.Random(19), [profile], start, TEST_TODAY, 400, TEST_TODAY, refracture_rate=0.2
    )
    synthetic.write(Actor.command_line(), db.session, rows, total=400)
    db.session.commit()
    return service


def test_the_flsdb_file_reads_back_into_an_empty_service_field_for_field(
    runner, db, make_service, synthetic_service, tmp_path
):
    data = _export(runner, "AAA", "--format", "flsdb")
    text = data.decode("cp1252")
    header, first = text.split("\r\n")[:2]
    # FLS-DB's own export first: its 35 headers in its order, the new questions beside them.
    sample = SAMPLE_HEADER.split(",")
    assert [h for h in header.split(",") if h in sample] == sample
    assert "\u2019" in text and "Don\u2019t know" in text and "Non hip/non spine" in text
    assert b"\x92" in data and "\n" not in text.replace("\r\n", "")
    cells = dict(zip(header.split(","), next(csv.reader([first])), strict=True))
    assert cells["1.09 Date Index Frac Diagnosed"][2] == "/"  # DD/MM/YYYY
    path = tmp_path / "flsdb.csv"
    path.write_bytes(data)
    empty = make_service("BBB")
    result = runner.invoke(args=["records", "import", str(path), "--service", "BBB"])
    assert result.exit_code == 0, result.output
    original, read_back = _records(db, synthetic_service), _records(db, empty)
    assert len(original) > 350
    assert read_back == original
    # Every kind of value came through: issue 19's fields too.
    for field in ("nogg_risk_category", "falls_two_or_more", "refracture1_site", "fracture_type"):
        assert any(values[field] is not None for values in original.values()), field


def test_leads_download_the_flsdb_file(signed_in, db):
    client, _lead, _service = signed_in(role="lead")
    response = client.get("/records/export-flsdb.csv")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/csv; charset=windows-1252")
    assert response.data.decode("cp1252").startswith("1.01 NHS Number,")
    assert "records" in client.get("/records/").get_data(as_text=True)


def test_clinicians_may_not_download_it(signed_in):
    client, _user, _service = signed_in()
    assert client.get("/records/export-flsdb.csv").status_code == 403


def test_the_canonical_export_keeps_the_dataset_columns_first(runner, db, make_service, tmp_path):
    make_service("BRD")
    header = _export(runner, "BRD").decode().splitlines()[0].split(",")
    assert header[:35] == list(ds.CSV_COLUMNS[:35])
    assert header[-len(ds.ADDED_FIELDS) :] == list(ds.ADDED_FIELDS)
    assert header[35 : len(header) - len(ds.ADDED_FIELDS)] == list(
        getattr(ds, "DIRECT_CARE_FIELDS", ())
    )


def test_an_import_leaves_an_episode_complete_for_the_audit_alone(
    runner, db, make_service, tmp_path
):
    from portal.journey import audit_completion
    from portal.models import Episode

    make_service("BRD")
    path = tmp_path / "first.csv"
    path.write_text(csv_text([row()]))
    assert runner.invoke(args=["records", "import", str(path), "--service", "BRD"]).exit_code == 0
    episode = db.session.scalars(select(Episode)).one()
    audit_completion.mark_complete(Actor.command_line(), episode)
    db.session.commit()
    # The same file again changes nothing and is accepted; a change is refused.
    assert runner.invoke(args=["records", "import", str(path), "--service", "BRD"]).exit_code == 0
    path.write_text(csv_text([row(smoker="Current")]))
    result = runner.invoke(args=["records", "import", str(path), "--service", "BRD"])
    assert result.exit_code != 0
    assert "smoker: complete for the audit" in result.stderr
