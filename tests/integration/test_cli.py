"""The command-line contract: exit 0 when done, 1 with the reason on stderr, 2 for wrong usage."""

from __future__ import annotations

from sqlalchemy import select

from portal.models import AuditEvent, Service, User


def run(runner, *args, input=None):
    return runner.invoke(args=list(args), input=input)


def test_services_add(runner, db):
    result = run(
        runner,
        "services",
        "add",
        "brd",
        "--name",
        "Bradford FLS",
        "--nation",
        "england",
        "--expected-caseload",
        "1500",
    )
    assert result.exit_code == 0, result.output
    service = db.session.scalar(select(Service))
    assert (service.code, service.nation, service.expected_caseload) == ("BRD", "England", 1500)
    assert db.session.scalar(select(AuditEvent).where(AuditEvent.action == "create"))


def test_services_add_refusals(runner, db):
    run(
        runner,
        "services",
        "add",
        "BRD",
        "--name",
        "B",
        "--nation",
        "Wales",
        "--expected-caseload",
        "5",
    )
    cases = [
        (("BRD", "Wales", "5"), "already exists"),
        (("ABC", "Scotland", "5"), "Unknown nation"),
        (("ABC", "Wales", "abc"), "whole number above 0"),
        (("ABC", "Wales", "0"), "whole number above 0"),
        (("ABC", "Wales", "-1"), "whole number above 0"),
        (("ALL", "Wales", "5"), "ALL is kept"),
        (("AB", "Wales", "5"), "3 letters or digits"),
    ]
    for (code, nation, caseload), reason in cases:
        result = run(
            runner,
            "services",
            "add",
            code,
            "--name",
            "X",
            "--nation",
            nation,
            "--expected-caseload",
            caseload,
        )
        assert result.exit_code == 1, (code, result.output)
        assert reason in result.stderr
    assert db.session.scalar(select(Service).where(Service.code == "ABC")) is None


def test_services_add_usage_errors_exit_2(runner):
    assert run(runner, "services", "add", "BRD").exit_code == 2
    assert (
        run(
            runner,
            "services",
            "add",
            "BRD",
            "--name",
            "X",
            "--nation",
            "Wales",
            "--expected-caseload",
            "5",
            "--colour",
            "red",
        ).exit_code
        == 2
    )


def test_services_import_adds_updates_and_is_all_or_nothing(runner, db, tmp_path):
    good = tmp_path / "services.csv"
    good.write_text(
        "code,name,nation,expected_caseload\nbrd,Bradford,England,1500\nCDF,Cardiff,wales,900\n"
    )
    result = run(runner, "services", "import", str(good))
    assert result.exit_code == 0, result.output
    assert "added 2, updated 0, unchanged 0, refused 0" in result.stdout
    good.write_text(
        "code,name,nation,expected_caseload\nBRD,Bradford,England,1600\nCDF,Cardiff,Wales,900\n"
    )
    result = run(runner, "services", "import", str(good))
    assert "added 0, updated 1, unchanged 1, refused 0" in result.stdout
    bad = tmp_path / "bad.csv"
    bad.write_text("code,name,nation,expected_caseload\nNEW,New,England,10\nBAD,Bad,Atlantis,10\n")
    result = run(runner, "services", "import", str(bad))
    assert result.exit_code == 1
    assert "line 3: nation: Unknown nation 'Atlantis'" in result.stderr
    assert db.session.scalar(select(Service).where(Service.code == "NEW")) is None


def test_services_import_never_changes_active(runner, db, tmp_path, make_service):
    make_service("BRD", active=False)
    path = tmp_path / "s.csv"
    path.write_text("code,name,nation,expected_caseload\nBRD,Bradford,England,1500\n")
    assert run(runner, "services", "import", str(path)).exit_code == 0
    db.session.expire_all()
    assert db.session.scalar(select(Service)).active is False


def test_users_add_reads_password_from_stdin(runner, db, make_service):
    make_service("BRD")
    result = run(
        runner,
        "users",
        "add",
        "Lead@NHS.test",
        "--role",
        "lead",
        "--service",
        "brd",
        "--name",
        "Lee Lead",
        input="violet-anchor-meadow-5\n",
    )
    assert result.exit_code == 0, result.output
    user = db.session.scalar(select(User))
    assert user.email == "lead@nhs.test" and user.role == "lead"
    assert [s.code for s in user.services] == ["BRD"]


def test_users_add_refusals(runner, db, make_service):
    make_service("BRD")
    cases = [
        (["x@nhs.test", "--role", "boss", "--service", "BRD"], "Unknown role"),
        (["x@nhs.test", "--role", "clinician"], "need at least one service"),
        (["x@nhs.test", "--role", "lead", "--service", "ZZZ"], "Unknown service"),
    ]
    for args, reason in cases:
        result = run(runner, "users", "add", *args, input="violet-anchor-meadow-5\n")
        assert result.exit_code == 1, result.output
        assert reason in result.stderr
    result = run(runner, "users", "add", "x@nhs.test", "--role", "admin", input="short\n")
    assert result.exit_code == 1 and "at least 12 characters" in result.stderr
    run(runner, "users", "add", "x@nhs.test", "--role", "admin", input="violet-anchor-meadow-5\n")
    result = run(
        runner, "users", "add", "X@nhs.test", "--role", "admin", input="violet-anchor-meadow-5\n"
    )
    assert result.exit_code == 1 and "already exists" in result.stderr
    assert run(runner, "users", "add", "y@nhs.test").exit_code == 2
