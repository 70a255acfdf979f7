"""`flask records import` / `flask records export`: the CLI contract of cli.md and the import
rules of dataset.md ("CSV: import and export"), checked through standard output, standard error
and the exit status, and against the stored records."""

from __future__ import annotations

import csv
import shutil
from datetime import date, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from portal import clock
from portal.audit.actor import Actor
from tests.records_csv import csv_text, later_row, nhs_number, row

SAMPLES = Path("/work/shared/samples")
ROOT = Path(__file__).resolve().parents[2]
if not SAMPLES.exists():  # the samples are also kept with the tests
    SAMPLES = ROOT / "tests" / "data"


@pytest.fixture
def brd(make_service):
    return make_service("BRD")


def write(tmp_path, text: str | bytes, name="records.csv") -> str:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8", newline="")
    return str(path)


def run_import(runner, path, *options):
    return runner.invoke(args=["records", "import", str(path), *options])


def episodes(db):
    from portal.models import Episode

    return db.session.scalars(select(Episode).order_by(Episode.fracture_date)).all()


def count(db, model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


# Samples ----------------------------------------------------------------------------------


def test_canonical_sample_imports_then_reimport_changes_nothing(runner, db, make_service):
    from portal.models import AuditEvent, Episode, Service

    xmp = make_service("XMP")
    sample = SAMPLES / "canonical-sample.csv"
    result = run_import(runner, sample)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "added 8, updated 0, unchanged 0, refused 0\n"
    assert result.stderr == ""
    assert count(db, Episode) == 8
    db.session.expire_all()
    version = db.session.get(Service, xmp.id).data_version
    assert version == 1
    events = count(db, AuditEvent)

    again = run_import(runner, sample, "--service", "xmp")
    assert again.exit_code == 0
    assert again.stdout == "added 0, updated 0, unchanged 8, refused 0\n"
    db.session.expire_all()
    assert db.session.get(Service, xmp.id).data_version == version
    # Only the import itself is audited: no patient or episode event.
    new_events = db.session.scalars(
        select(AuditEvent).where(AuditEvent.id > 0).order_by(AuditEvent.id)
    ).all()[events:]
    assert [e.action for e in new_events] == ["import"]


def test_flsdb_sample_windows_1252_question_codes_uk_dates(runner, db, make_service):
    make_service("XMP")
    result = run_import(runner, SAMPLES / "flsdb-export-sample.csv", "--service", "XMP")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "added 8, updated 0, unchanged 0, refused 0\n"
    stored = {e.patient.nhs_number: e for e in episodes(db)}
    first = stored["9992146885"]
    assert first.patient.date_of_birth.isoformat() == "1936-10-12"
    assert first.fracture_date.isoformat() == "2025-02-17"
    # `Don’t know` with a curly apostrophe in Windows-1252 means Not known.
    assert first.on_bone_therapy_at_fracture == "Not known"
    # FLS-DB's `Non hip/non spine` is Other.
    assert first.fracture_sites == "Other"
    # 1.11-1.13 site columns make one set, in dataset.md order.
    assert stored["9996279723"].fracture_sites == "Hip;Humerus;Wrist"
    # The same records as the canonical sample: importing it changes nothing.
    again = run_import(runner, SAMPLES / "canonical-sample.csv")
    assert again.stdout == "added 0, updated 0, unchanged 8, refused 0\n"


def test_mis_encoded_dont_know_and_curly_apostrophe(runner, db, brd, tmp_path):
    text = csv_text(
        [
            row(nhs_number=nhs_number(1), smoker="Donít know", previous_fracture="Don’t know"),
            row(nhs_number=nhs_number(2), smoker="Dont know", previous_fracture="unknown"),
        ]
    )
    path = write(tmp_path, text.encode("cp1252"))
    result = run_import(runner, path)
    assert result.exit_code == 0, result.stderr
    assert [(e.smoker, e.previous_fracture) for e in episodes(db)] == [("Not known",) * 2] * 2


def test_utf8_with_bom_and_crlf(runner, db, brd, tmp_path):
    text = csv_text([row(smoker="Don’t know")], line_end="\r\n")
    path = write(tmp_path, b"\xef\xbb\xbf" + text.encode("utf-8"))
    result = run_import(runner, path)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "added 1, updated 0, unchanged 0, refused 0\n"
    assert episodes(db)[0].smoker == "Not known"


def test_headers_any_case_trimmed_and_unknown_columns_listed(runner, db, brd, tmp_path):
    text = (
        " NHS_Number ,Fracture_Date,date_of_birth,SEX,fracture_sites,Ward,Notes\n"
        f"{nhs_number(3)},12/3/2024 00:00,1/2/1950,f,hip,7B,\n"
    ).replace(",f,", ",Female,")
    result = run_import(runner, write(tmp_path, text), "--service", "BRD")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == (
        "unknown column: Ward\nunknown column: Notes\nadded 1, updated 0, unchanged 0, refused 0\n"
    )
    episode = episodes(db)[0]
    assert episode.fracture_date.isoformat() == "2024-03-12"
    assert episode.patient.date_of_birth.isoformat() == "1950-02-01"


# Refused cells: line and column as in the file --------------------------------------------

REFUSED_CELLS = [
    ("nhs_number", "1234567890", "check digit"),
    ("nhs_number", "0000000000", "one digit repeated"),
    ("nhs_number", "", "NHS number is required"),
    ("date_of_birth", "1990-01-01", "50 or over"),
    ("date_of_birth", "1890-01-01", "over 115"),
    ("sex", "F", "Sex must be one of"),
    ("postcode", '=HYPERLINK("http://x")', "UK postcode"),
    ("fracture_date", "2015-12-31", "on or after 01/01/2016"),
    ("fracture_date", "2099-01-01", "future"),
    ("fracture_date", "01/03/24", "four-digit year"),
    ("fracture_date", "", "is required"),
    ("identification_date", "2024-02-01", "before the fracture was diagnosed"),
    ("fracture_sites", "Hip;Hip", "twice"),
    ("fracture_sites", "Knee", "not one of"),
    ("height_cm", "165cm", "without a unit"),
    ("height_cm", "99", "between 100 and 230"),
    ("weight_kg", "60,5", "decimal point"),
    ("t_score", "-1.75", "one decimal place"),
    ("t_score", "-7.1", "between"),
    ("frax_major_percent", "101", "between 0 and 100"),
    ("bone_therapy", "Alendronate;Not appropriate", "cannot mix"),
    ("bone_therapy", "Alendronate;alendronic acid", "twice"),
    ("smoker", "Sometimes", "Smoker must be one of"),
    ("dxa_not_recommended_reason", "Other", "DXA"),
    ("followup16_date", "2024-06-01", "12-16 week"),
]


@pytest.mark.parametrize(("column", "value", "reason"), REFUSED_CELLS)
def test_each_rule_refused_with_line_and_column(runner, db, brd, tmp_path, column, value, reason):
    from portal.models import Episode

    rows = [
        row(nhs_number=nhs_number(10)),
        row(**({"nhs_number": nhs_number(11)} | {column: value})),
    ]
    result = run_import(runner, write(tmp_path, csv_text(rows)))
    assert result.exit_code == 1
    assert result.stdout == "added 0, updated 0, unchanged 0, refused 1, nothing written\n"
    mine = [line for line in result.stderr.splitlines() if line.startswith(f"line 3: {column}: ")]
    assert mine, result.stderr
    assert any(reason.lower() in line.lower() for line in mine), result.stderr
    assert all(line.startswith("line 3: ") for line in result.stderr.splitlines())
    assert count(db, Episode) == 0


CROSS_FIELD_RULES = [
    ({"dxa_status": "Not recommended"}, "dxa_not_recommended_reason", "is required when DXA"),
    ({"dxa_status": "Not known", "dxa_date": "", "t_score": ""}, None, None),
    ({"dxa_date": "", "t_score": "-2.0"}, "t_score", "only be given with the date of DXA"),
    ({"dxa_status": "Not known"}, "dxa_date", "only be given when DXA is Recommended"),
    ({"followup16_done": "Yes"}, "followup16_date", "required when the follow-up was done"),
    (
        {
            "followup16_done": "Yes",
            "followup16_date": "2024-07-01",
            "followup52_done": "Yes",
            "followup52_date": "2024-07-01",
        },
        "followup52_date",
        "must be after",
    ),
    ({"date_of_death": "1930-01-01"}, "date_of_death", "before the date of birth"),
    ({"date_of_death": "2099-01-01"}, "date_of_death", "future"),
    ({"date_of_death": "2024-04-15"}, "dxa_date", "after the patient's date of death"),
    ({"therapy16": "Aspirin"}, "therapy16", "must be one of"),
    ({"date_of_birth": "1974-03-02"}, "date_of_birth", "50 or over"),
    ({"date_of_birth": "1974-03-01"}, None, None),  # 50 on the day of the fracture
]


@pytest.mark.parametrize(("overrides", "column", "reason"), CROSS_FIELD_RULES)
def test_rules_between_fields(runner, db, brd, tmp_path, overrides, column, reason):
    result = run_import(runner, write(tmp_path, csv_text([row(**overrides)])))
    if column is None:
        assert result.exit_code == 0, result.stderr
        assert result.stdout == "added 1, updated 0, unchanged 0, refused 0\n"
        return
    assert result.exit_code == 1
    mine = [line for line in result.stderr.splitlines() if line.startswith(f"line 2: {column}: ")]
    assert mine and reason in mine[0], result.stderr


def test_cross_field_rules_use_the_columns_of_the_file(runner, db, brd, tmp_path):
    header = "1.01 NHS Number,1.09 Date Index Frac Diagnosed,1.02 DoB,1.03 Gender,1.11 Site,3.01 DXA,3.03 DateofDXA"
    text = f"{header}\n{nhs_number(5)},01/03/2024,12/03/1940,Female,Hip,Not known,01/05/2024\n"
    result = run_import(runner, write(tmp_path, text), "--service", "BRD")
    assert result.exit_code == 1
    assert result.stderr.startswith("line 2: 3.03 DateofDXA: ")


def test_every_refused_cell_of_a_row_is_reported_in_column_order(runner, brd, tmp_path):
    rows = [row(sex="X", height_cm="5", t_score="abc")]
    result = run_import(runner, write(tmp_path, csv_text(rows)))
    assert [line.split(":")[1].strip() for line in result.stderr.splitlines()] == [
        "sex",
        "height_cm",
        "t_score",
    ]
    assert result.stdout.endswith("refused 1, nothing written\n")


# All-or-nothing and keep-valid ------------------------------------------------------------


def _big_file(tmp_path, bad_line: int, total_rows: int) -> str:
    rows = []
    for number in range(2, total_rows + 2):
        values = {"nhs_number": nhs_number(1000 + number)}
        if number == bad_line:
            values["fracture_sites"] = "Elbow"
        rows.append(row(**values))
    return write(tmp_path, csv_text(rows))


def test_all_or_nothing_leaves_no_row_when_line_9999_is_bad(runner, db, brd, tmp_path):
    from portal.models import Episode, Patient

    path = _big_file(tmp_path, bad_line=9999, total_rows=10000)
    result = run_import(runner, path)
    assert result.exit_code == 1
    assert result.stdout == "added 0, updated 0, unchanged 0, refused 1, nothing written\n"
    assert result.stderr.startswith("line 9999: fracture_sites: ")
    assert count(db, Episode) == 0
    assert count(db, Patient) == 0

    kept = run_import(runner, path, "--keep-valid")
    assert kept.exit_code == 1
    assert kept.stdout == "added 9999, updated 0, unchanged 0, refused 1\n"
    assert count(db, Episode) == 9999


def test_dry_run_writes_nothing_and_exits_1_only_with_refusals(runner, db, brd, tmp_path):
    from portal.models import AuditEvent, Episode

    path = write(tmp_path, csv_text([row()]))
    result = run_import(runner, path, "--dry-run")
    assert result.exit_code == 0
    assert result.stdout == "added 0, updated 0, unchanged 0, refused 0, nothing written\n"
    assert count(db, Episode) == 0
    assert count(db, AuditEvent) == 0
    bad = write(tmp_path, csv_text([row(sex="?")]), "bad.csv")
    result = run_import(runner, bad, "--dry-run", "--keep-valid")
    assert result.exit_code == 1


# Merging ----------------------------------------------------------------------------------


def test_update_merges_empty_cells_and_replaces_sets(runner, db, brd, tmp_path):
    from portal.models import AuditEvent

    run_import(runner, write(tmp_path, csv_text([row(fracture_sites="Hip;Wrist")])))
    columns = ("nhs_number", "fracture_date", "fracture_sites", "smoker", "height_cm", "postcode")
    update = csv_text(
        [row(fracture_sites="Spine", smoker="Never", height_cm="", postcode="")], columns=columns
    )
    result = run_import(runner, write(tmp_path, update, "update.csv"), "--service", "BRD")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "added 0, updated 1, unchanged 0, refused 0\n"
    db.session.expire_all()
    episode = episodes(db)[0]
    assert episode.fracture_sites == "Spine"
    assert episode.smoker == "Never"
    assert episode.assessment_date.isoformat() == "2024-04-01"  # no column: kept
    assert episode.patient.postcode == "SW1A 2AA"  # empty cell: kept
    event = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "update", AuditEvent.entity_type == "episode")
    ).one()
    assert event.changes == {
        "fracture_sites": ["Hip;Wrist", "Spine"],
        "smoker": [None, "Never"],
        "_version": [1, 2],  # as a form save records it, for field-by-field merging
    }
    assert event.entity_id == episode.id


def test_merged_episode_is_checked_as_a_whole(runner, db, brd, tmp_path):
    run_import(runner, write(tmp_path, csv_text([row()])))
    columns = ("nhs_number", "fracture_date", "dxa_status")
    text = csv_text([row(dxa_status="Not known")], columns=columns)
    result = run_import(runner, write(tmp_path, text, "u.csv"), "--service", "BRD")
    assert result.exit_code == 1
    # The stored DXA date no longer fits: reported on its field (no column in this file).
    assert result.stderr.startswith("line 2: dxa_date: ")


def test_date_of_birth_or_sex_differing_is_refused(runner, db, brd, tmp_path):
    run_import(runner, write(tmp_path, csv_text([row()])))
    text = csv_text(
        [
            later_row("2025-01-02", date_of_birth="1941-03-12"),
            later_row("2024-01-02", nhs_number=nhs_number(7)),
            later_row("2025-01-02", nhs_number=nhs_number(7), sex="Male"),
        ]
    )
    result = run_import(runner, write(tmp_path, text, "b.csv"))
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert lines[0].startswith(
        "line 2: date_of_birth: Date of birth differs from the stored patient"
    )
    assert lines[1].startswith("line 4: sex: Sex differs from line 3")
    assert result.stdout == "added 0, updated 0, unchanged 0, refused 2, nothing written\n"


def test_patient_fields_take_the_last_rows_value(runner, db, brd, tmp_path):
    text = csv_text(
        [
            later_row("2024-01-02", postcode="LS1 1PH", care_home_resident="No"),
            later_row("2025-01-02", postcode="B7 3PZ", care_home_resident=""),
        ]
    )
    result = run_import(runner, write(tmp_path, text))
    assert result.exit_code == 0, result.stderr
    first, second = episodes(db)
    assert first.patient_id == second.patient_id
    assert first.patient.postcode == "B7 3PZ"
    assert first.patient.care_home_resident == "No"
    # A refracture links to the patient's latest earlier episode.
    assert second.previous_episode_id == first.id
    assert first.previous_episode_id is None


def test_refracture_of_a_stored_patient_links_to_the_stored_episode(runner, db, brd, tmp_path):
    run_import(runner, write(tmp_path, csv_text([later_row("2023-01-02")])))
    run_import(runner, write(tmp_path, csv_text([later_row("2025-01-02")]), "r.csv"))
    first, second = episodes(db)
    assert second.previous_episode_id == first.id


def test_same_episode_twice_in_one_file(runner, db, brd, tmp_path):
    text = csv_text([row(), row(nhs_number=nhs_number(9)), row(fracture_date="01/03/2024")])
    result = run_import(runner, write(tmp_path, text))
    assert result.exit_code == 1
    assert result.stderr == "line 4: fracture_date: duplicate of line 2\n"


def test_deleted_episode_key_is_refused(runner, db, brd, tmp_path):
    run_import(runner, write(tmp_path, csv_text([row()])))
    episode = episodes(db)[0]
    episode.deleted_at = clock.utcnow()
    db.session.commit()
    result = run_import(runner, write(tmp_path, csv_text([row(smoker="Never")]), "d.csv"))
    assert result.exit_code == 1
    assert result.stderr == "line 2: fracture_date: deleted; an admin can restore it\n"


def test_service_code_rules(runner, db, make_service, tmp_path):
    make_service("BRD")
    make_service("LDS")
    text = csv_text([row(service_code="lds"), row(nhs_number=nhs_number(4), service_code="")])
    chosen = run_import(runner, write(tmp_path, text), "--service", "BRD")
    assert chosen.exit_code == 1
    assert chosen.stderr == "line 2: service_code: names service LDS, but this import is for BRD\n"
    assert chosen.stdout.endswith("refused 1, nothing written\n")

    unchosen = run_import(runner, write(tmp_path, text))
    assert unchosen.stderr.splitlines() == [
        "line 3: service_code: Service code is required when no service is chosen"
    ]
    text = csv_text([row(service_code="ALL"), row(nhs_number=nhs_number(4), service_code="ZZZ")])
    result = run_import(runner, write(tmp_path, text, "all.csv"))
    lines = result.stderr.splitlines()
    assert lines[0].startswith("line 2: service_code: ") and "ALL" in lines[0]
    assert lines[1] == "line 3: service_code: there is no service ZZZ"


def test_unknown_service_option_exits_1(runner, tmp_path, brd):
    result = run_import(runner, write(tmp_path, csv_text([row()])), "--service", "NOP")
    assert result.exit_code == 1
    assert "NOP" in result.stderr


def test_export_without_service_is_wrong_usage(runner):
    assert runner.invoke(args=["records", "export"]).exit_code == 2


# File refusals ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "The file is empty"),
        (b"\r\n \r\n", "The file is empty"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "not a CSV file"),
        (b"PK\x03\x04\x14\x00\x06\x00", "xlsx"),
        (f"{nhs_number(1)},2024-03-01,1940-01-01\n".encode(), "no header"),
        (b"nhs_number;fracture_date;sex\n9434765919;2024-03-01;Female\n", "semicolons"),
        (b"nhs_number\tfracture_date\n9434765919\t2024-03-01\n", "tabs"),
        (b"nhs_number,date_of_birth\n9434765919,1940-01-01\n", "fracture_date"),
        (
            b"nhs_number,fracture_date,4.01 BoneTherapy,Bone_Therapy\n",
            "Two columns give bone_therapy",
        ),
        (b"nhs_number,fracture_date,fracture_sites,1.12 Site\n", "Two columns give fracture_sites"),
        (b"nhs_number,fracture_date,1.11 a,1.11 b\n", "Two columns give fracture_sites"),
    ],
)
def test_file_refusals(runner, db, brd, tmp_path, content, reason):
    result = run_import(runner, write(tmp_path, content), "--service", "BRD")
    assert result.exit_code == 1
    assert reason in result.stderr
    assert result.stdout == ""


def test_over_the_size_limit(app, runner, brd, tmp_path):
    app.config["IMPORT_MAX_BYTES"] = 100
    result = run_import(runner, write(tmp_path, csv_text([row(), row(nhs_number=nhs_number(2))])))
    assert result.exit_code == 1
    assert "over the limit" in result.stderr


def test_no_service_and_no_service_code_column(runner, brd, tmp_path):
    text = csv_text([row()], columns=("nhs_number", "fracture_date", "sex"))
    result = run_import(runner, write(tmp_path, text))
    assert result.exit_code == 1
    assert "Choose the service" in result.stderr


def test_line_numbers_count_physical_lines(runner, db, brd, tmp_path):
    text = (
        "nhs_number,fracture_date,date_of_birth,sex,fracture_sites,postcode\n"
        f'{nhs_number(1)},2024-03-01,1940-01-01,Female,Hip,"SW1A\n2AA"\n'
        "\n"
        f"{nhs_number(2)},2024-03-01,1940-01-01,Female,Elbow,\n"
    )
    result = run_import(runner, write(tmp_path, text), "--service", "BRD")
    assert result.stderr.startswith("line 5: fracture_sites: ")


# Audit, export, round trip ----------------------------------------------------------------


def test_import_and_episodes_are_audited(runner, db, brd, tmp_path):
    from portal.models import AuditEvent, ImportJob

    path = write(tmp_path, csv_text([row(), row(nhs_number=nhs_number(2))]), "clinic.csv")
    assert run_import(runner, path).exit_code == 0
    events = db.session.scalars(select(AuditEvent).order_by(AuditEvent.id)).all()
    assert [(e.action, e.entity_type) for e in events] == [
        ("create", "patient"),
        ("create", "patient"),
        ("create", "episode"),
        ("create", "episode"),
        ("import", "import_job"),
    ]
    assert events[2].changes["fracture_sites"] == [None, "Hip"]
    assert events[2].changes["t_score"] == [None, -2.5]
    job = db.session.scalars(select(ImportJob)).one()
    assert (job.file_name, job.added, job.status) == ("clinic.csv", 2, "applied")
    first = episodes(db)[0]
    assert isinstance(first.created_at, datetime) and first.version == 1
    assert first.assessment_date.isoformat() == "2024-04-01" and first.t_score == -2.5
    assert "clinic.csv" in events[-1].detail and job.file_sha256 in events[-1].detail


def test_export_format_order_and_neutralising(runner, db, brd, tmp_path):
    from kpis.csv_output import safe_cell

    rows = [
        row(nhs_number=nhs_number(2), t_score="-2", height_cm="165.0"),
        row(nhs_number=nhs_number(1), t_score="+1.0", weight_kg="60.5"),
        later_row("2024-04-01", nhs_number=nhs_number(3), bone_therapy="zoledronic acid;HRT"),
    ]
    assert run_import(runner, write(tmp_path, csv_text(rows))).exit_code == 0
    episode = episodes(db)[-1]  # the 2024-04-01 one
    episode.deleted_at = clock.utcnow()
    db.session.commit()
    result = runner.invoke(args=["records", "export", "--service", "brd"])
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("service_code,nhs_number,date_of_birth,sex,postcode,")
    assert len(lines) == 3  # the deleted episode is left out
    first = dict(zip(lines[0].split(","), lines[1].split(","), strict=True))
    second = dict(zip(lines[0].split(","), lines[2].split(","), strict=True))
    assert sorted([first["nhs_number"], second["nhs_number"]]) == [
        first["nhs_number"],
        second["nhs_number"],
    ]
    by_nhs = {first["nhs_number"]: first, second["nhs_number"]: second}
    assert by_nhs[nhs_number(2)]["t_score"] == "-2.0"
    assert by_nhs[nhs_number(2)]["height_cm"] == "165"
    assert by_nhs[nhs_number(1)]["t_score"] == "1.0"
    assert by_nhs[nhs_number(1)]["weight_kg"] == "60.5"
    assert safe_cell("=1+2") == "'=1+2"
    assert safe_cell("@SUM(A1)") == "'@SUM(A1)"
    assert safe_cell("-1.7") == "-1.7"


def test_round_trip_export_import_into_empty_database(runner, db, app, tmp_path):
    from portal.models import AuditEvent, Episode, ImportJob, Patient, Service

    shutil.copy(SAMPLES / "flsdb-export-sample.csv", tmp_path / "in.csv")
    service = Service(code="XMP", name="X", nation="England", expected_caseload=9, data_version=0)
    db.session.add(service)
    db.session.commit()
    assert run_import(runner, tmp_path / "in.csv", "--service", "XMP").exit_code == 0
    extra = csv_text(
        [
            later_row(
                "2025-06-01",
                service_code="XMP",
                nhs_number="9992146885",
                date_of_birth="1936-10-12",
                postcode="",
                bone_therapy="Not known",
            )
        ]
    )
    assert run_import(runner, write(tmp_path, extra, "extra.csv")).exit_code == 0
    first = runner.invoke(args=["records", "export", "--service", "XMP"]).stdout
    write(tmp_path, first, "export.csv")

    for model in (AuditEvent, ImportJob, Episode, Patient):
        db.session.execute(model.__table__.delete())
    db.session.commit()
    result = run_import(runner, tmp_path / "export.csv")
    assert result.stdout == "added 9, updated 0, unchanged 0, refused 0\n", result.stderr
    second = runner.invoke(args=["records", "export", "--service", "XMP"]).stdout
    assert second == first


def test_rows_of_one_patient_across_chunks(runner, db, brd, tmp_path, monkeypatch):
    from portal.records.importing import check

    monkeypatch.setattr(check, "CHUNK_ROWS", 2)
    rows = [
        later_row("2020-01-02", postcode="LS1 1PH"),
        later_row("2021-01-02", nhs_number=nhs_number(2)),
        later_row("2022-01-02", nhs_number=nhs_number(3)),
        later_row("2023-01-02", sex="Male"),
        later_row("2024-01-02", care_home_resident="Yes"),
    ]
    path = write(tmp_path, csv_text(rows))
    result = run_import(runner, path)
    assert result.stderr.startswith("line 5: sex: Sex differs from line 2")
    kept = run_import(runner, path, "--keep-valid")
    assert kept.stdout == "added 4, updated 0, unchanged 0, refused 1\n"
    mine = [e for e in episodes(db) if e.patient.nhs_number == nhs_number(1)]
    assert [e.fracture_date.year for e in mine] == [2020, 2024]
    assert mine[1].previous_episode_id == mine[0].id
    assert mine[0].patient.care_home_resident == "Yes"


def test_reimport_with_patient_fields_differing_between_rows_changes_nothing(
    runner, db, brd, tmp_path
):
    from portal.models import Service

    rows = [
        later_row("2023-01-02", care_home_resident="No", postcode="LS1 1PH"),
        later_row("2024-01-02", care_home_resident="Yes", postcode=""),
    ]
    path = write(tmp_path, csv_text(rows))
    assert run_import(runner, path).stdout == "added 2, updated 0, unchanged 0, refused 0\n"
    again = run_import(runner, path)
    assert again.stdout == "added 0, updated 0, unchanged 2, refused 0\n"
    db.session.expire_all()
    assert db.session.get(Service, brd.id).data_version == 1
    moved = csv_text([later_row("2024-01-02", postcode="B7 3PZ")])
    result = run_import(runner, write(tmp_path, moved, "moved.csv"))
    assert result.stdout == "added 0, updated 1, unchanged 0, refused 0\n"
    assert episodes(db)[0].patient.postcode == "B7 3PZ"


def test_site_columns_collapse_mapped_repeats_and_refuse_typed_repeats(runner, db, brd, tmp_path):
    header = "1.01 NHS,1.09 Frac,1.02 DoB,1.03 Sex,1.11 Site1,1.12 Site2,1.13 Site3"
    text = (
        f"{header}\n"
        f"{nhs_number(1)},01/03/2024,12/03/1940,Female,Non hip/non spine,Other,\n"
        f"{nhs_number(2)},01/03/2024,12/03/1940,Female,Hip,hip,\n"
    )
    result = run_import(runner, write(tmp_path, text), "--service", "BRD", "--keep-valid")
    assert result.stderr.startswith("line 3: 1.11 Site1: ")
    assert "twice" in result.stderr
    assert [e.fracture_sites for e in episodes(db)] == ["Other"]


def test_records_changed_after_the_check_write_nothing(app, db, brd, tmp_path):
    from portal.models import AuditEvent
    from portal.records import importing as record_import

    path = tmp_path / "first.csv"
    path.write_text(csv_text([row()]))
    record_import.import_file(path, Actor.command_line(), service=brd)
    db.session.commit()
    path.write_text(csv_text([row(smoker="Never")]))
    plan = record_import.check_file(path, service=brd)
    episode = episodes(db)[0]
    episode.smoker = "Current"  # a nurse saves meanwhile
    db.session.commit()
    events = count(db, AuditEvent)
    with pytest.raises(record_import.StaleRecords):
        record_import.apply_plan(plan, Actor.command_line())
    db.session.rollback()
    plan.close()
    db.session.expire_all()
    assert episodes(db)[0].smoker == "Current"
    assert count(db, AuditEvent) == events


def test_inactive_service_is_refused(runner, db, make_service, tmp_path):
    make_service("OLD", active=False)
    result = run_import(runner, write(tmp_path, csv_text([row()])), "--service", "OLD")
    assert result.exit_code == 1
    assert "inactive" in result.stderr
    result = run_import(runner, write(tmp_path, csv_text([row(service_code="OLD")]), "o.csv"))
    assert result.stderr.startswith("line 2: service_code: service OLD is inactive")


def test_import_reports_progress_to_the_terminal_bar(runner, brd, tmp_path, monkeypatch):
    from portal.records import cli as records_cli
    from portal.records.importing import check

    monkeypatch.setattr(check, "CHUNK_ROWS", 10)
    bars = []

    class Bar:
        def __init__(self, total, label):
            self.total, self.label, self.done = total, label, 0
            bars.append(self)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def update(self, n):
            self.done += n

    monkeypatch.setattr(records_cli, "progress_bar", Bar)
    rows = [row(nhs_number=nhs_number(n)) for n in range(25)]
    assert run_import(runner, write(tmp_path, csv_text(rows))).exit_code == 0
    assert [(b.total, b.done) for b in bars] == [(25, 25)]


def test_episode_added_after_the_check_writes_nothing(app, db, brd, tmp_path, monkeypatch):
    from portal.models import Episode, Patient
    from portal.records import importing as record_import

    path = tmp_path / "new.csv"
    path.write_text(csv_text([row(), row(nhs_number=nhs_number(2))]))
    real_apply = record_import.apply_plan

    def a_nurse_saves_first(plan, actor, **kwargs):
        # A nurse adds the first patient's episode between the check and the write.
        db.session.rollback()
        patient = Patient(
            service_id=brd.id,
            nhs_number=nhs_number(1),
            date_of_birth=date(1940, 3, 12),
            sex="Female",
        )
        db.session.add(patient)
        db.session.flush()
        db.session.add(
            Episode(
                service_id=brd.id,
                patient_id=patient.id,
                fracture_date=date(2024, 3, 1),
                fracture_sites="Hip",
            )
        )
        db.session.commit()
        return real_apply(plan, actor, **kwargs)

    monkeypatch.setattr(record_import, "apply_plan", a_nurse_saves_first)
    with pytest.raises(record_import.StaleRecords):
        record_import.import_file(path, Actor.command_line(), service=brd)
    db.session.rollback()
    assert count(db, Episode) == 1  # the nurse's, and nothing of the file
    assert count(db, Patient) == 1


def test_stored_formula_text_is_neutralised_in_the_export(runner, db, brd, tmp_path):
    """Data that reached the database another way (an old system, a hand edit) still cannot run
    as a formula in a spreadsheet; numbers stay numbers."""
    from portal.models import Episode

    run_import(runner, write(tmp_path, csv_text([row(t_score="-1.7")])))
    episode = episodes(db)[0]
    episode.patient.postcode = "=1+2"
    episode.therapy16 = None
    db.session.commit()
    db.session.execute(
        Episode.__table__.update().values(bone_therapy="@SUM(A1)", fracture_sites="+Hip")
    )
    db.session.commit()
    lines = runner.invoke(args=["records", "export", "--service", "BRD"]).stdout.splitlines()
    cells = dict(zip(lines[0].split(","), next(csv.reader([lines[1]])), strict=True))
    assert cells["postcode"] == "'=1+2"
    assert cells["bone_therapy"] == "'@SUM(A1)"
    assert cells["fracture_sites"] == "'+Hip"
    assert cells["t_score"] == "-1.7"


def test_a_bulk_import_gathers_postgresql_statistics(runner, db, brd, tmp_path, monkeypatch):
    """As the queue's worker does (portal/operations/statistics.py): after a committed import of
    many rows the planner knows them at once."""
    from sqlalchemy import text

    from portal.operations import statistics

    if db.engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL's planner statistics: this database is SQLite")
    monkeypatch.setattr(statistics, "AFTER_ROWS", 20)
    path = write(tmp_path, csv_text([row(nhs_number=nhs_number(n)) for n in range(20)]))
    assert run_import(runner, path).exit_code == 0
    db.session.commit()
    stored = db.session.scalar(text("SELECT count(*) FROM episodes"))
    estimated = db.session.scalar(text("SELECT reltuples FROM pg_class WHERE relname = 'episodes'"))
    assert stored >= 20
    assert estimated == stored
