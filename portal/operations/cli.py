"""`flask backup create PATH` and `flask backup restore PATH [--force]` (cli.md, security.md)."""

from __future__ import annotations

from pathlib import Path

import click
from flask import current_app
from flask.cli import AppGroup

from portal.audit.actor import Actor
from portal.command_line import progress_bar, refuse
from portal.extensions import db
from portal.operations import statistics

backup_cli = AppGroup("backup", help="Back up and restore the database.")


def _signing_key() -> bytes:
    from portal.operations.backup_signing import signing_key

    return signing_key(
        current_app.config["SECRET_KEY"], current_app.config.get("BACKUP_SIGNING_KEY")
    )


@backup_cli.command("create")
@click.argument("path", type=click.Path(path_type=Path))
def backup_create(path: Path) -> None:
    """A consistent copy of the database, taken while the portal runs."""
    from portal.operations import backups as backup

    try:
        manifest = backup.create(
            current_app.config["SQLALCHEMY_DATABASE_URI"],
            path,
            _signing_key(),
            progress=progress_bar,
        )
    except (backup.BackupError, OSError) as error:
        refuse(f"backup not made: {error}")
    rows = sum(t["rows"] for t in manifest["tables"].values())
    click.echo(
        f"backup written to {path}: {len(manifest['tables'])} tables, {rows} rows, "
        f"schema {manifest['schema_revision']}"
    )


@backup_cli.command("restore")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--force", is_flag=True, help="Restore over a database that holds data.")
def backup_restore(path: Path, force: bool) -> None:
    """Restore a backup, then check it: schema at head, row counts, users can sign in."""
    from flask_migrate import upgrade

    from portal.operations import backups as backup

    # The portal's own connections must not hold the database while it is replaced.
    db.session.remove()
    db.engine.dispose()

    def upgrade_schema() -> None:
        upgrade()
        db.engine.dispose()

    try:
        report = backup.restore(
            current_app.config["SQLALCHEMY_DATABASE_URI"],
            path,
            key=_signing_key(),
            force=force,
            upgrade=upgrade_schema,
            progress=progress_bar,
        )
    except (backup.BackupError, OSError) as error:
        refuse(f"restore refused: {error}")
    upgraded = f"; schema upgraded from {report.upgraded_from}" if report.upgraded_from else ""
    click.echo(
        f"restored {path}: {report.tables} tables, {report.rows} rows, "
        f"{report.users_who_can_sign_in} users can sign in{upgraded}; checks passed"
    )


@click.command("demo")
@click.option("--today", default=None, help="Pretend today is this date (YYYY-MM-DD).")
def demo(today: str | None) -> None:
    """Fill an empty database with a realistic synthetic demo."""
    from datetime import date

    from portal.operations import demo as demo_data

    if today:
        try:
            day = date.fromisoformat(today)
        except ValueError:
            refuse(f"--today {today!r} is not a date like 2026-03-31")
    else:
        day = None
    if demo_data.database_has_data():
        click.echo("The database already holds data: the demo was not added.")
        return
    summary = demo_data.fill(Actor.command_line(), today=day, progress=progress_bar)
    db.session.commit()
    statistics.gather()
    click.echo(summary)
