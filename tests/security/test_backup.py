"""`flask backup create` / `flask backup restore` (cli.md, security.md): a consistent copy taken
while the portal runs; backup, wipe, restore gives the same row counts and checksums; the restore
checks itself and refuses a database holding data unless --force; exit 1 with a reason."""

from __future__ import annotations

import json
import tarfile
import threading
from datetime import date

import pytest
from sqlalchemy import create_engine, func, select, text

from portal.audit.actor import Actor
from tests.conftest import TEST_PASSWORD
from tests.security.databases import BACKENDS, figures_of, fresh_database, migrated_app

KEY = b"a backup signing key for the tests"


def _key(app) -> bytes:
    from portal.operations.backup_signing import signing_key

    return signing_key(app.config["SECRET_KEY"], app.config.get("BACKUP_SIGNING_KEY"))


def _fill(app) -> None:
    """Services, users who can sign in, patients and their audit trail: through the services."""
    from portal.accounts import users as accounts
    from portal.admin import service_directory
    from portal.audit import events as audit
    from portal.extensions import db
    from portal.models import Patient

    with app.app_context():
        brd = service_directory.add_service(
            Actor.command_line(), "BRD", "Bradford FLS", "England", "1200"
        )
        car = service_directory.add_service(
            Actor.command_line(), "CAR", "Cardiff FLS", "Wales", "800"
        )
        accounts.create_user(
            Actor.command_line(), "lead@nhs.test", "Lead", "lead", [brd], password=TEST_PASSWORD
        )
        accounts.create_user(
            Actor.command_line(),
            "nurse@nhs.test",
            "Nurse",
            "clinician",
            [brd, car],
            password=TEST_PASSWORD,
        )
        accounts.create_user(
            Actor.command_line(), "waiting@nhs.test", "Not yet set", "clinician", [car]
        )
        for n in range(40):
            patient = Patient(
                service_id=(brd if n % 2 else car).id,
                nhs_number=f"{9000000000 + n}",
                date_of_birth=date(1930 + n % 50, 1 + n % 12, 1 + n % 28),
                sex="Female" if n % 3 else "Male",
                postcode="BD1 1AA",
            )
            db.session.add(patient)
            audit.record(
                Actor.command_line(), "create", patient, {"nhs_number": (None, patient.nhs_number)}
            )
        db.session.commit()


def _wipe(url: str, app) -> None:
    """Lose everything: drop every table, then create the empty schema again (a new server)."""
    from flask_migrate import downgrade, upgrade

    from portal.extensions import db

    with app.app_context():
        downgrade(revision="base")
        upgrade()
        db.engine.dispose()


def _sign_in_works(app, email: str) -> bool:
    from portal.accounts import users as accounts
    from portal.extensions import db

    with app.app_context():
        result = accounts.authenticate(
            Actor.visitor("127.0.0.1"), email, TEST_PASSWORD, free=5, max_seconds=900
        )
        db.session.rollback()
        db.engine.dispose()
        return result.user is not None


@pytest.fixture(params=BACKENDS)
def portal_db(request, tmp_path):
    from portal.extensions import db

    with fresh_database(request.param, tmp_path) as url:
        app = migrated_app(url, tmp_path)
        yield request.param, url, app
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


def test_backup_wipe_restore_gives_the_same_rows_and_checksums(portal_db, tmp_path):
    backend, url, app = portal_db
    _fill(app)
    before = figures_of(url)
    assert before["patients"]["rows"] == 40 and before["users"]["rows"] == 3
    runner = app.test_cli_runner()
    archive = tmp_path / "portal.backup"
    made = runner.invoke(args=["backup", "create", str(archive)])
    assert made.exit_code == 0, made.output
    assert "backup written" in made.output
    with tarfile.open(archive) as tar:
        manifest = json.loads(tar.extractfile("manifest.json").read())
    assert manifest["backend"] == backend
    assert manifest["tables"] == before
    assert manifest["users_who_can_sign_in"] == 2
    assert archive.stat().st_mode & 0o077 == 0

    _wipe(url, app)
    assert figures_of(url)["patients"]["rows"] == 0
    assert not _sign_in_works(app, "nurse@nhs.test")

    restored = runner.invoke(args=["backup", "restore", str(archive)])
    assert restored.exit_code == 0, restored.output + str(restored.exception)
    assert "checks passed" in restored.output and "2 users can sign in" in restored.output
    assert _without_services_checksum(figures_of(url)) == _without_services_checksum(before)
    assert _sign_in_works(app, "nurse@nhs.test")


def test_restore_refuses_a_database_that_holds_data_unless_forced(portal_db, tmp_path):
    _backend, url, app = portal_db
    _fill(app)
    saved = figures_of(url)
    runner = app.test_cli_runner()
    archive = tmp_path / "portal.backup"
    assert runner.invoke(args=["backup", "create", str(archive)]).exit_code == 0
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM audit_events WHERE id > 30"))
        # The live data moved on: KPI figures may be cached under these versions.
        connection.execute(text("UPDATE services SET data_version = data_version + 7"))
        live_versions = dict(
            connection.execute(text("SELECT id, data_version FROM services")).all()
        )
    engine.dispose()
    changed = figures_of(url)

    refused = runner.invoke(args=["backup", "restore", str(archive)])
    assert refused.exit_code == 1
    assert "holds data" in refused.output and "--force" in refused.output
    assert figures_of(url) == changed  # nothing touched

    forced = runner.invoke(args=["backup", "restore", str(archive), "--force"])
    assert forced.exit_code == 0, forced.output
    assert _without_services_checksum(figures_of(url)) == _without_services_checksum(saved)
    # Every service's data version moved past the replaced one, so no cached figure is reused.
    engine = create_engine(url)
    with engine.connect() as connection:
        restored = dict(connection.execute(text("SELECT id, data_version FROM services")).all())
    engine.dispose()
    assert all(restored[i] > live_versions[i] for i in live_versions)


def _without_services_checksum(figures: dict) -> dict:
    """Restore advances each service's data version (the KPI cache key): only that differs."""
    return {name: ({"rows": f["rows"]} if name == "services" else f) for name, f in figures.items()}


def test_backup_while_the_portal_writes_is_consistent(portal_db, tmp_path):
    """Writes go on during the backup; the copy agrees with its own manifest, row for row."""
    from portal.operations import backups as backup

    _backend, url, app = portal_db
    _fill(app)
    stop = threading.Event()
    written = [0]

    def writer():
        engine = create_engine(url)
        try:
            while not stop.is_set():
                with engine.begin() as connection:
                    connection.execute(
                        text(
                            "INSERT INTO audit_events (at, action, detail) "
                            "VALUES (CURRENT_TIMESTAMP, 'view', 'load during backup')"
                        )
                    )
                written[0] += 1
        finally:
            engine.dispose()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        archive = tmp_path / "live.backup"
        manifest = backup.create(url, archive, KEY)
    finally:
        stop.set()
        thread.join()
    assert written[0] > 0
    with fresh_database(_backend, tmp_path) as other_url:
        report = backup.restore(other_url, archive, key=KEY, force=False, upgrade=lambda: None)
        assert _without_services_checksum(figures_of(other_url)) == _without_services_checksum(
            manifest["tables"]
        )
        assert report.rows == sum(t["rows"] for t in manifest["tables"].values())


def _repack(folder, member: str, path, key: bytes | None = None):
    """A backup file made by hand from an unpacked one (to tamper with it); signed again with
    `key` when given (someone who holds the key), else with the signature it came with."""
    from portal.operations.backup_signing import sign

    if key is not None:
        signature = sign((folder / "manifest.json").read_bytes(), key)
        (folder / "manifest.sig").write_text(signature)
    with tarfile.open(path, "w") as tar:
        tar.add(folder / "manifest.json", arcname="manifest.json")
        tar.add(folder / "manifest.sig", arcname="manifest.sig")
        tar.add(folder / member, arcname=member)
    return path


def test_damaged_or_foreign_backups_are_refused(portal_db, tmp_path):
    backend, url, app = portal_db
    _fill(app)
    runner = app.test_cli_runner()
    archive = tmp_path / "portal.backup"
    assert runner.invoke(args=["backup", "create", str(archive)]).exit_code == 0

    not_a_backup = tmp_path / "notes.txt"
    not_a_backup.write_text("hello")
    result = runner.invoke(args=["backup", "restore", str(not_a_backup), "--force"])
    assert result.exit_code == 1 and "not a portal backup" in result.output

    missing = runner.invoke(args=["backup", "restore", str(tmp_path / "nope.backup")])
    assert missing.exit_code == 1 and "no such backup file" in missing.output

    # Tamper with the manifest's recorded row count, signing it again with the portal's key:
    # the restore's own check must catch it.
    key = _key(app)
    with tarfile.open(archive) as tar:
        manifest = json.loads(tar.extractfile("manifest.json").read())
        member = manifest["database_file"]
        tar.extractall(tmp_path / "x", filter="data")
    manifest["tables"]["patients"]["rows"] += 1
    (tmp_path / "x" / "manifest.json").write_text(json.dumps(manifest))
    unsigned = _repack(tmp_path / "x", member, tmp_path / "unsigned.backup")
    result = runner.invoke(args=["backup", "restore", str(unsigned), "--force"])
    assert result.exit_code == 1 and "signature does not match" in result.output
    tampered = _repack(tmp_path / "x", member, tmp_path / "tampered.backup", key)
    result = runner.invoke(args=["backup", "restore", str(tampered), "--force"])
    assert result.exit_code == 1
    assert "patients" in result.output and "rows" in result.output

    # Damage the database file itself: its checksum no longer matches.
    data = (tmp_path / "x" / member).read_bytes()
    (tmp_path / "x" / member).write_bytes(data[:-100] + b"\0" * 100)
    manifest["tables"]["patients"]["rows"] -= 1
    (tmp_path / "x" / "manifest.json").write_text(json.dumps(manifest))
    damaged = _repack(tmp_path / "x", member, tmp_path / "damaged.backup", key)
    result = runner.invoke(args=["backup", "restore", str(damaged), "--force"])
    assert result.exit_code == 1 and "damaged" in result.output


def test_backup_to_a_missing_directory_exits_1(portal_db, tmp_path):
    _backend, _url, app = portal_db
    result = app.test_cli_runner().invoke(args=["backup", "create", str(tmp_path / "no" / "x")])
    assert result.exit_code == 1 and "no such directory" in result.output


def test_restore_of_another_backend_is_refused(tmp_path):
    from portal.operations import backups as backup

    with fresh_database("sqlite", tmp_path) as url:
        migrated_app(url, tmp_path)
        archive = tmp_path / "sqlite.backup"
        backup.create(url, archive, KEY)
    with pytest.raises(backup.BackupError, match="backup is of a sqlite database"):
        backup.restore(
            "postgresql+psycopg://postgres@127.0.0.1:5432/none",
            archive,
            key=KEY,
            force=True,
            upgrade=lambda: None,
        )


def test_users_who_can_sign_in_counts_active_users_with_a_hash(portal_db):
    from portal.operations import backups as backup

    _backend, url, app = portal_db
    _fill(app)
    engine = create_engine(url)
    with engine.connect() as connection:
        assert backup.users_who_can_sign_in(connection) == 2
        assert connection.scalar(select(func.count()).select_from(text("users"))) == 3
    engine.dispose()


def test_progress_shows_on_a_terminal_and_nothing_otherwise(tmp_path):
    """cli.md: long-running commands show a bar on standard error only when it is a terminal."""
    import os
    import pty
    import subprocess
    import sys

    from tests.conftest import ROOT

    with fresh_database("sqlite", tmp_path) as url:
        app = migrated_app(url, tmp_path)
        _fill(app)
        env = {**os.environ, "DATABASE_URL": url, "SECRET_KEY": "x", "PYTHONPATH": str(ROOT)}
        command = [sys.executable, "-m", "flask", "backup", "create"]
        plain = subprocess.run(
            [*command, str(tmp_path / "plain.backup")],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
        )
        assert plain.returncode == 0, plain.stderr
        assert "Copying database" not in plain.stderr and "Checking tables" not in plain.stderr

        leader, follower = pty.openpty()
        terminal = subprocess.run(
            [*command, str(tmp_path / "terminal.backup")],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=follower,
            text=True,
        )
        os.close(follower)
        shown = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:
                break
            if not chunk:
                break
            shown += chunk
        os.close(leader)
        assert terminal.returncode == 0
        assert b"Copying database" in shown and b"Checking tables" in shown
        assert "backup written" in terminal.stdout


def test_backup_where_a_file_stands_for_the_directory_exits_1_with_the_reason(portal_db, tmp_path):
    _backend, _url, app = portal_db
    (tmp_path / "not-a-folder").write_text("x")
    result = app.test_cli_runner().invoke(
        args=["backup", "create", str(tmp_path / "not-a-folder" / "x.backup")]
    )
    assert result.exit_code == 1
    assert "backup not made" in result.output and "Not a directory" in result.output


def test_a_forged_backup_is_refused(portal_db, tmp_path):
    """Issue 23, finding 9: promote a user to admin inside a backup, recompute every figure of the
    manifest, and the restore used to say "checks passed". Without the key it cannot be signed."""
    from portal.operations import backups as backup

    backend, url, app = portal_db
    if backend != "sqlite":
        pytest.skip("the forgery edits the SQLite file inside the backup")
    _fill(app)
    runner = app.test_cli_runner()
    archive = tmp_path / "portal.backup"
    assert runner.invoke(args=["backup", "create", str(archive)]).exit_code == 0
    folder = tmp_path / "forged"
    with tarfile.open(archive) as tar:
        tar.extractall(folder, filter="data")
    manifest = json.loads((folder / "manifest.json").read_text())
    database = folder / manifest["database_file"]
    engine = create_engine(f"sqlite:///{database}")
    with engine.begin() as connection:
        connection.execute(text("UPDATE users SET role = 'admin' WHERE email = 'nurse@nhs.test'"))
    with engine.connect() as connection:
        manifest["tables"] = backup.table_figures(connection)
    engine.dispose()
    manifest["database_sha256"] = backup._sha256_file(database)
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))
    # Signed again by someone without the portal's key (here: with a key of their own).
    forged = _repack(folder, manifest["database_file"], tmp_path / "forged.backup", KEY)
    result = runner.invoke(args=["backup", "restore", str(forged), "--force"])
    assert result.exit_code == 1
    assert "signature does not match" in result.output
    with create_engine(url).connect() as connection:
        role = connection.scalar(text("SELECT role FROM users WHERE email = 'nurse@nhs.test'"))
    assert role == "clinician"


def test_a_restore_checks_the_signature_with_the_configured_key(portal_db, tmp_path):
    """BACKUP_SIGNING_KEY signs and checks; a server with another key refuses the backup."""
    _backend, url, app = portal_db
    _fill(app)
    archive = tmp_path / "portal.backup"
    app.config["BACKUP_SIGNING_KEY"] = "the operators' backup key, kept apart"
    runner = app.test_cli_runner()
    assert runner.invoke(args=["backup", "create", str(archive)]).exit_code == 0
    app.config["BACKUP_SIGNING_KEY"] = "another key"
    refused = runner.invoke(args=["backup", "restore", str(archive), "--force"])
    assert refused.exit_code == 1 and "signature does not match" in refused.output
    app.config["BACKUP_SIGNING_KEY"] = "the operators' backup key, kept apart"
    restored = runner.invoke(args=["backup", "restore", str(archive), "--force"])
    assert restored.exit_code == 0, restored.output


def test_a_restored_sqlite_database_is_readable_by_its_owner_only(tmp_path):
    from portal.operations import backups as backup

    with fresh_database("sqlite", tmp_path) as url:
        migrated_app(url, tmp_path)
        archive = tmp_path / "sqlite.backup"
        backup.create(url, archive, KEY)
        assert archive.stat().st_mode & 0o777 == 0o600
        target = tmp_path / "restored.db"
        backup.restore(f"sqlite:///{target}", archive, key=KEY, force=False, upgrade=lambda: None)
    assert target.stat().st_mode & 0o777 == 0o600
