"""The CSV import and export of the direct-care columns (dataset.md, columns 36-43; issue 18):
the export writes all 43 columns in order, NHS numbers as 10 digits; the import takes the eight
columns by their rules, leaves a stored value alone for an empty or missing cell, keeps a hospital
number to one patient of a service, and lists unusual dates and an early "not done" as warnings."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from kpis.dataset import CSV_COLUMNS, DIRECT_CARE_FIELDS
from tests.conftest import TEST_TODAY
from tests.integration.test_records_cli import run_import, write
from tests.records_csv import csv_text, later_row, nhs_number, row

PEOPLE = dict(
    given_name="  Zoë  ",
    family_name="Brontë",
    hospital_number="rxh77",
    phone="+44 7700 900123;01632 960123",
    gp_practice="=Riverside Surgery",
    gp_practice_code="y99001",
    preferred_language="Welsh",
    interpreter_needed="n",
)


@pytest.fixture
def brd(make_service):
    return make_service("BRD")


def _patient(db, number):
    from portal.models import Patient

    db.session.expire_all()
    return db.session.scalar(select(Patient).where(Patient.nhs_number == number))


def test_columns_36_to_43_are_the_direct_care_fields():
    # dataset.md: these 43 never move; fields added later come after them.
    assert len(CSV_COLUMNS) >= 43
    assert CSV_COLUMNS[35:43] == DIRECT_CARE_FIELDS
    assert CSV_COLUMNS[34] == "refracture"


def test_import_then_export_round_trips_the_43_columns(runner, db, brd, tmp_path):
    path = write(tmp_path, csv_text([row(**PEOPLE)]))
    result = run_import(runner, path)
    assert result.exit_code == 0, result.stderr
    patient = _patient(db, nhs_number(1))
    assert (patient.given_name, patient.family_name, patient.hospital_number) == (
        "Zoë",
        "Brontë",
        "RXH77",
    )
    assert patient.phone == "+44 7700 900123;01632 960123"
    assert patient.gp_practice_code == "Y99001" and patient.interpreter_needed == "No"
    assert patient.family_name_search == "bronte"

    exported = runner.invoke(args=["records", "export", "--service", "BRD"])
    assert exported.exit_code == 0
    lines = list(csv.reader(io.StringIO(exported.stdout)))
    assert tuple(lines[0]) == CSV_COLUMNS
    cells = dict(zip(lines[0], lines[1], strict=True))
    assert cells["nhs_number"] == nhs_number(1)
    assert cells["given_name"] == "Zoë" and cells["hospital_number"] == "RXH77"
    assert cells["phone"] == "'+44 7700 900123;01632 960123"  # neutralised (security.md)
    assert cells["gp_practice"] == "'=Riverside Surgery"
    assert cells["interpreter_needed"] == "No"

    # The export imports again and changes nothing.
    again = run_import(runner, write(tmp_path, exported.stdout, "again.csv"))
    assert again.exit_code == 0 and "added 0, updated 0, unchanged 1" in again.stdout
    assert _patient(db, nhs_number(1)).phone == "+44 7700 900123;01632 960123"


def test_an_empty_or_missing_cell_leaves_the_stored_value_alone(runner, db, brd, tmp_path):
    assert run_import(runner, write(tmp_path, csv_text([row(**PEOPLE)]))).exit_code == 0
    empty = row(given_name="", phone="", preferred_language="English")
    assert run_import(runner, write(tmp_path, csv_text([empty]), "b.csv")).exit_code == 0
    patient = _patient(db, nhs_number(1))
    assert patient.given_name == "Zoë" and patient.phone.startswith("+44")
    assert patient.preferred_language == "English"
    # A file without the eight columns at all still imports.
    without = csv_text([row(postcode="LS1 4AP")], columns=CSV_COLUMNS[:35])
    assert run_import(runner, write(tmp_path, without, "c.csv")).exit_code == 0
    patient = _patient(db, nhs_number(1))
    assert patient.postcode == "LS1 4AP" and patient.family_name == "Brontë"


def test_refused_direct_care_cells_are_reported_by_line_and_column(runner, db, brd, tmp_path):
    rows = [
        row(nhs_number=nhs_number(1), phone="12345"),
        row(nhs_number=nhs_number(2), gp_practice_code="B8600"),
        row(nhs_number=nhs_number(3), hospital_number="AB 12-3"),
        row(nhs_number=nhs_number(4), interpreter_needed="maybe"),
        row(nhs_number=nhs_number(5), given_name="x" * 101),
    ]
    result = run_import(runner, write(tmp_path, csv_text(rows)), "--keep-valid")
    assert result.exit_code == 1
    for line, column in ((2, "phone"), (3, "gp_practice_code"), (4, "hospital_number")):
        assert f"line {line}: {column}:" in result.stderr
    assert "line 5: interpreter_needed:" in result.stderr and "line 6: given_name:" in result.stderr


def test_a_hospital_number_names_one_patient_of_a_service(runner, db, brd, tmp_path):
    first = row(nhs_number=nhs_number(1), hospital_number="H1")
    assert run_import(runner, write(tmp_path, csv_text([first]))).exit_code == 0
    rows = [
        row(nhs_number=nhs_number(2), hospital_number="h1"),  # the stored patient's
        row(nhs_number=nhs_number(3), hospital_number="H2"),
        row(nhs_number=nhs_number(4), hospital_number="H2"),  # line 3's
        later_row("2024-06-01", nhs_number=nhs_number(1), hospital_number="H1"),
    ]
    result = run_import(runner, write(tmp_path, csv_text(rows), "b.csv"), "--keep-valid")
    assert result.exit_code == 1
    assert "line 2: hospital_number: Hospital number H1 is already another patient's" in (
        result.stderr
    )
    assert "line 4: hospital_number:" in result.stderr and "(line 3)" in result.stderr
    assert "refused 2" in result.stdout


def test_unusual_dates_and_an_early_not_done_are_accepted_with_warnings(app, db, brd, tmp_path):
    from portal.audit.actor import Actor
    from portal.records import importing

    # A fracture 48 days before the suite's day: the 12-16 week window is still to come.
    fracture = TEST_TODAY - timedelta(days=48)
    rows = [
        row(nhs_number=nhs_number(1), dxa_date="2025-06-01"),  # more than a year after
        row(
            nhs_number=nhs_number(2),
            fracture_date=fracture.isoformat(),
            identification_date=(fracture + timedelta(days=19)).isoformat(),
            assessment_date=(fracture + timedelta(days=9)).isoformat(),
            dxa_date="",
            t_score="",
            followup16_done="No",
        ),
    ]
    path = write(tmp_path, csv_text(rows))
    report = importing.import_file(Path(path), Actor.command_line(), service=brd)
    db.session.commit()
    assert report.refused == 0 and report.added == 2
    warnings = {(w["line"], w["column"]): w["reason"] for w in report.warnings}
    assert "more than a year after the fracture" in warnings[(2, "dxa_date")]
    assert "after the FLS assessment" in warnings[(3, "identification_date")]
    assert "window is open" in warnings[(3, "followup16_done")]
    assert report.warned == 3


def test_the_import_page_lists_the_warnings(signed_in, db, tmp_path):
    from tests.integration.test_records_web import job_id_of, upload, wait_for

    client, _, _ = signed_in()
    content = csv_text([row(dxa_date="2025-06-01")]).encode()
    response = upload(client, content)
    job_id = job_id_of(response)
    wait_for(db, job_id)
    page = client.get(f"/records/import/{job_id}").get_data(as_text=True)
    assert 'id="warnings"' in page and "more than a year after the fracture" in page
