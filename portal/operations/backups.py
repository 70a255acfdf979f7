"""Backups (security.md, "Keeping data"; cli.md): a consistent copy taken while the portal runs,
and a restore that checks itself.

A backup is one tar file holding the database (SQLite: a copy made with SQLite's online backup API;
PostgreSQL: `pg_dump -Fc`) and `manifest.json`: the schema revision, each table's row count and a
checksum of its rows, all read from the same consistent state as the copy, and the number of
active users who can sign in; and `manifest.sig`, an HMAC-SHA256 of the manifest (which holds the
database file's SHA-256, so the signature covers the data too) with a key that is never inside the
backup (BACKUP_SIGNING_KEY, else one derived from SECRET_KEY for this purpose alone). A restore
first checks the signature, so a backup edited by someone without the key (an admin promoted
inside, the manifest recomputed) is refused; then it refuses a database that holds data unless
forced, restores, brings the schema to head and checks every figure of the manifest. Every file
written holds patient data and is readable by its owner only (0600).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, create_engine, func, inspect, select, text
from sqlalchemy.engine import URL, make_url

from portal import clock
from portal.files import make_private
from portal.models import Base, User
from portal.operations.backup_signing import check_signature, sign
from portal.operations.progress import Progress, quiet

MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
SQLITE_MEMBER = "database.sqlite3"
POSTGRES_MEMBER = "database.pgdump"
FORMAT_VERSION = 1


class BackupError(RuntimeError):
    """A backup or restore that could not be done or did not check out; the message says why."""


# A backup's manifest.json; a table's figures: {"rows": int, "sha256": str}.
Manifest = dict[str, Any]
TableFigures = dict[str, dict[str, Any]]


@dataclass
class RestoreReport:
    tables: int
    rows: int
    users_who_can_sign_in: int
    upgraded_from: str | None


MIGRATIONS_DIRECTORY = Path(__file__).resolve().parents[2] / "migrations"


# --- figures of a database --------------------------------------------------------------------


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    return value


def table_figures(connection: Connection, progress: Progress = quiet) -> TableFigures:
    """Row count and a SHA-256 of the rows (in primary-key order) of every table of the schema,
    over the columns the database has (a database at an older revision lacks the newer ones)."""
    inspector = inspect(connection)
    tables = [t for t in Base.metadata.sorted_tables if inspector.has_table(t.name)]
    figures: TableFigures = {}
    with progress(len(tables), "Checking tables") as bar:
        for table in tables:
            present = {column["name"] for column in inspector.get_columns(table.name)}
            columns = [column for column in table.columns if column.name in present]
            order = [column for column in table.primary_key.columns if column.name in present]
            digest = hashlib.sha256()
            rows = 0
            for row in connection.execute(select(*columns).order_by(*(order or columns))):
                digest.update(
                    json.dumps([_plain(v) for v in row], sort_keys=True, default=str).encode()
                )
                digest.update(b"\n")
                rows += 1
            figures[table.name] = {"rows": rows, "sha256": digest.hexdigest()}
            bar.update(1)
    return figures


def users_who_can_sign_in(connection: Connection) -> int:
    """Active users holding an Argon2 password hash."""
    count = connection.scalar(
        select(func.count())
        .select_from(User.__table__)
        .where(User.__table__.c.active.is_(True), User.__table__.c.password_hash.like("$argon2%"))
    )
    return count or 0


def schema_revision(connection: Connection) -> str | None:
    if not inspect(connection).has_table("alembic_version"):
        return None
    revision: str | None = connection.scalar(text("SELECT version_num FROM alembic_version"))
    return revision


def holds_data(connection: Connection) -> bool:
    """Whether any table of the portal's schema has a row (an empty, migrated database does not)."""
    names = set(inspect(connection).get_table_names())
    for table in Base.metadata.sorted_tables:
        if table.name in names and connection.scalar(select(func.count()).select_from(table)):
            return True
    return False


def _manifest(connection: Connection, backend: str, progress: Progress) -> Manifest:
    return {
        "format": FORMAT_VERSION,
        "backend": backend,
        "created_at": clock.now().isoformat(timespec="seconds"),
        "schema_revision": schema_revision(connection),
        "tables": table_figures(connection, progress),
        "users_who_can_sign_in": users_who_can_sign_in(connection),
    }


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _libpq_url(url: URL) -> str:
    """The SQLAlchemy URL as pg_dump and pg_restore understand it."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def backend_of(url: URL) -> str:
    if url.get_backend_name() == "sqlite":
        _sqlite_file(url)
        return "sqlite"
    if url.get_backend_name() == "postgresql":
        return "postgresql"
    raise BackupError(f"backups of {url.get_backend_name()} databases are not supported")


def _sqlite_file(url: URL) -> str:
    """The file of an SQLite URL; an in-memory database has none."""
    if not url.database or url.database == ":memory:":
        raise BackupError("an in-memory SQLite database cannot be backed up or restored")
    return url.database


# --- create -----------------------------------------------------------------------------------


def create(database_url: str, path: Path, key: bytes, progress: Progress = quiet) -> Manifest:
    """Write a backup of the database to `path` (a tar file), signed with `key`; returns its
    manifest."""
    url = make_url(database_url)
    backend = backend_of(url)
    path = Path(path)
    if path.is_dir():
        raise BackupError(f"{path} is a directory: give the path of the backup file to write")
    if not path.parent.exists():
        raise BackupError(f"{path.parent}: no such directory")
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=".backup-") as work:
        work_dir = Path(work)
        if backend == "sqlite":
            member, manifest = _create_sqlite(url, work_dir, progress)
        else:
            member, manifest = _create_postgres(url, work_dir, progress)
        manifest["database_sha256"] = _sha256_file(work_dir / member)
        manifest["database_file"] = member
        manifest_bytes = json.dumps(manifest, indent=2, sort_keys=True).encode()
        (work_dir / MANIFEST).write_bytes(manifest_bytes)
        (work_dir / SIGNATURE).write_text(sign(manifest_bytes, key))
        partial = work_dir / "backup.tar"
        make_private(partial)  # patient data: readable by the owner only, from the start
        with tarfile.open(partial, "w") as archive:
            archive.add(work_dir / MANIFEST, arcname=MANIFEST)
            archive.add(work_dir / SIGNATURE, arcname=SIGNATURE)
            archive.add(work_dir / member, arcname=member)
        # A whole file or none: never a half-written backup under the final name.
        os.replace(partial, path)
    return manifest


def _sqlite_copy(
    source: sqlite3.Connection, target: sqlite3.Connection, progress: Progress, label: str
) -> None:
    """SQLite's online backup API, page by page, with a progress bar over the pages."""
    total = source.execute("PRAGMA page_count").fetchone()[0]
    with progress(max(total, 1), label) as bar:
        done = [0]

        def step(status: int, remaining: int, pages: int) -> None:
            copied = pages - remaining
            bar.update(max(0, copied - done[0]))
            done[0] = copied

        source.backup(target, pages=1024, progress=step)


def _create_sqlite(url: URL, work_dir: Path, progress: Progress) -> tuple[str, Manifest]:
    source_path = Path(_sqlite_file(url))
    if not source_path.exists():
        raise BackupError(f"{source_path}: no such database")
    copy_path = work_dir / SQLITE_MEMBER
    source = sqlite3.connect(f"file:{source_path}?mode=ro", uri=True, timeout=30)
    target = sqlite3.connect(copy_path)
    try:
        # The online backup API copies a consistent snapshot while the portal keeps writing.
        _sqlite_copy(source, target, progress, "Copying database")
        target.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
    finally:
        source.close()
        target.close()
    # The figures come from the copy itself, so they describe exactly what was saved.
    engine = create_engine(f"sqlite:///{copy_path}")
    try:
        with engine.connect() as connection:
            manifest = _manifest(connection, "sqlite", progress)
    finally:
        engine.dispose()
    return SQLITE_MEMBER, manifest


def _create_postgres(url: URL, work_dir: Path, progress: Progress) -> tuple[str, Manifest]:
    if shutil.which("pg_dump") is None:
        raise BackupError("pg_dump is not installed (Debian package postgresql-client)")
    dump_path = work_dir / POSTGRES_MEMBER
    engine = create_engine(url, isolation_level="REPEATABLE READ")
    try:
        with engine.connect() as connection:
            # One snapshot for the figures and the dump, so they agree even while the portal runs.
            snapshot = connection.scalar(text("SELECT pg_export_snapshot()"))
            manifest = _manifest(connection, "postgresql", progress)
            result = subprocess.run(
                [
                    "pg_dump",
                    "--format=custom",
                    "--no-owner",
                    "--no-privileges",
                    f"--snapshot={snapshot}",
                    f"--file={dump_path}",
                    f"--dbname={_libpq_url(url)}",
                ],
                capture_output=True,
                text=True,
            )
            connection.rollback()
    finally:
        engine.dispose()
    if result.returncode != 0:
        raise BackupError(f"pg_dump failed: {result.stderr.strip()}")
    return POSTGRES_MEMBER, manifest


# --- restore ----------------------------------------------------------------------------------


def _member(archive: tarfile.TarFile, name: str) -> bytes | None:
    try:
        member = archive.extractfile(name)
    except KeyError:
        return None
    return None if member is None else member.read()


def read_manifest(path: Path, key: bytes | None = None) -> Manifest:
    """The backup's manifest; with `key`, only once its signature is checked."""
    path = Path(path)
    if not path.is_file():
        raise BackupError(f"{path}: no such backup file")
    try:
        with tarfile.open(path, "r") as archive:
            manifest_bytes = _member(archive, MANIFEST)
            if manifest_bytes is None:
                raise KeyError(MANIFEST)
            signature = _member(archive, SIGNATURE)
        manifest: Manifest = json.loads(manifest_bytes)
    except (tarfile.TarError, KeyError, json.JSONDecodeError) as error:
        raise BackupError(f"{path} is not a portal backup ({error})") from None
    if key is not None:
        try:
            check_signature(manifest_bytes, signature, key)
        except ValueError as error:
            raise BackupError(str(error)) from None
    return manifest


def restore(
    database_url: str,
    path: Path,
    *,
    key: bytes,
    force: bool,
    upgrade: Callable[[], None],
    progress: Progress = quiet,
) -> RestoreReport:
    """Restore `path` into the database, once its signature is checked with `key`, then check it
    against the backup's manifest.

    `upgrade` migrates the schema to head (flask_migrate.upgrade in the app's context); it runs
    when the backup was taken at an older revision.
    """
    url = make_url(database_url)
    backend = backend_of(url)
    manifest = read_manifest(path, key)
    if manifest.get("format") != FORMAT_VERSION:
        raise BackupError(f"backup format {manifest.get('format')!r} is not supported")
    if manifest["backend"] != backend:
        raise BackupError(
            f"the backup is of a {manifest['backend']} database; this portal uses {backend}"
        )
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            if holds_data(connection) and not force:
                raise BackupError(
                    "the database holds data: restoring would replace it. "
                    "Give --force to restore over it."
                )
            versions_before = _data_versions(connection)
    finally:
        engine.dispose()

    with tempfile.TemporaryDirectory(prefix="fls-restore-") as work:
        work_dir = Path(work)
        member = manifest["database_file"]
        with tarfile.open(path, "r") as archive:
            archive.extract(member, work_dir, filter="data")
        copy = work_dir / member
        if _sha256_file(copy) != manifest["database_sha256"]:
            raise BackupError("the backup file is damaged: its checksum does not match")
        if backend == "sqlite":
            _check_sqlite_copy(copy, manifest, progress)
            _restore_sqlite(url, copy, progress)
        else:
            _restore_postgres(url, copy)

    revision_before = manifest["schema_revision"]
    upgrade()
    report = verify(database_url, manifest, revision_before, progress)
    _advance_data_versions(database_url, versions_before)
    return report


def _data_versions(connection: Connection) -> dict[int, int]:
    """Each service's data version in the database about to be replaced (none if it is empty)."""
    from sqlalchemy import inspect, text

    if "services" not in inspect(connection).get_table_names():
        return {}
    rows = connection.execute(text("SELECT id, data_version FROM services"))
    return {service_id: version for service_id, version in rows}


def _advance_data_versions(database_url: str, versions_before: dict[int, int]) -> None:
    """Move every service's data version past both the restored one and the one it replaced.

    Cached KPI figures are keyed by data version; a restore can bring back a version number that
    was already cached for other data, which would show stale figures (hazard: stale figures).
    """
    from sqlalchemy import text

    engine = create_engine(database_url)
    try:
        with engine.begin() as connection:
            for service_id, version in connection.execute(
                text("SELECT id, data_version FROM services")
            ).all():
                newer = max(version, versions_before.get(service_id, 0)) + 1
                connection.execute(
                    text("UPDATE services SET data_version = :v WHERE id = :id"),
                    {"v": newer, "id": service_id},
                )
    finally:
        engine.dispose()


def _check_sqlite_copy(copy: Path, manifest: Manifest, progress: Progress) -> None:
    """Check the copy before it replaces anything."""
    engine = create_engine(f"sqlite:///{copy}")
    try:
        with engine.connect() as connection:
            if connection.scalar(text("PRAGMA integrity_check")) != "ok":
                raise BackupError("the database in the backup fails SQLite's integrity check")
            _compare(table_figures(connection, progress), manifest["tables"])
    finally:
        engine.dispose()


def _restore_sqlite(url: URL, copy: Path, progress: Progress) -> None:
    database = _sqlite_file(url)
    make_private(Path(database))  # a database made by the restore: the owner's only
    source = sqlite3.connect(copy)
    target = sqlite3.connect(database, timeout=30)
    try:
        # The backup API replaces the target's content as one step under its lock.
        _sqlite_copy(source, target, progress, "Restoring database")
    finally:
        source.close()
        target.close()
    for suffix in ("", "-wal", "-shm"):
        written = Path(database + suffix)
        if written.exists():
            written.chmod(0o600)


def _restore_postgres(url: URL, dump: Path) -> None:
    if shutil.which("pg_restore") is None:
        raise BackupError("pg_restore is not installed (Debian package postgresql-client)")
    result = subprocess.run(
        [
            "pg_restore",
            # Drop and recreate what the dump holds, all in one transaction: on any error the
            # database is left as it was.
            "--clean",
            "--if-exists",
            "--no-owner",
            "--no-privileges",
            "--single-transaction",
            "--exit-on-error",
            f"--dbname={_libpq_url(url)}",
            str(dump),
        ],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise BackupError(f"pg_restore failed: {result.stderr.strip()}")


def _compare(found: TableFigures, expected: TableFigures, *, checksums: bool = True) -> None:
    for name, figures in expected.items():
        if name not in found:
            raise BackupError(f"table {name} is missing after the restore")
        if found[name]["rows"] != figures["rows"]:
            raise BackupError(
                f"table {name} has {found[name]['rows']} rows; the backup recorded {figures['rows']}"
            )
        if checksums and found[name]["sha256"] != figures["sha256"]:
            raise BackupError(f"table {name} differs from the backup (checksum)")


def verify(
    database_url: str, manifest: Manifest, revision_before: str | None, progress: Progress = quiet
) -> RestoreReport:
    """Schema at head, row counts (and, at the same revision, checksums) as recorded, and the
    users who could sign in when the backup was taken still can."""
    from alembic.script import ScriptDirectory

    heads = ScriptDirectory(str(MIGRATIONS_DIRECTORY)).get_heads()
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            revision = schema_revision(connection)
            if revision not in heads:
                raise BackupError(f"schema at revision {revision}, not at head {', '.join(heads)}")
            found = table_figures(connection, progress)
            # A migration may rewrite rows; then only the counts can be compared.
            _compare(found, manifest["tables"], checksums=revision == revision_before)
            can_sign_in = users_who_can_sign_in(connection)
    finally:
        engine.dispose()
    if can_sign_in != manifest["users_who_can_sign_in"]:
        raise BackupError(
            f"{can_sign_in} active users have a password hash; "
            f"the backup recorded {manifest['users_who_can_sign_in']}"
        )
    return RestoreReport(
        tables=len(found),
        rows=sum(f["rows"] for f in found.values()),
        users_who_can_sign_in=can_sign_in,
        upgraded_from=revision_before if revision_before != revision else None,
    )
