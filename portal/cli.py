"""The command-line contract (spec/cli.md): exit 1 for a refusal with the reason on standard
error, exit 2 only for wrong usage (click's own)."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from flask import Flask
from flask.cli import AppGroup

from portal.extensions import db

services_cli = AppGroup("services", help="Manage FLS services.")
users_cli = AppGroup("users", help="Manage user accounts.")


def refuse(message: str) -> None:
    """Say why on standard error and exit 1."""
    db.session.rollback()
    click.echo(message, err=True)
    sys.exit(1)


def progress_bar(total: int, label: str):
    """A progress bar on standard error when it is a terminal; silent otherwise (cli.md)."""
    if sys.stderr.isatty():
        return click.progressbar(length=total, label=label, file=sys.stderr)
    return _Silent()


class _Silent:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def update(self, n: int) -> None:
        pass


@services_cli.command("add")
@click.argument("code")
@click.option("--name", required=True)
@click.option("--nation", required=True)
@click.option("--expected-caseload", "expected_caseload", required=True)
def services_add(code: str, name: str, nation: str, expected_caseload: str) -> None:
    """Add a service; code and nation in any case."""
    from portal.services import service_directory

    try:
        service = service_directory.add_service(code, name, nation, expected_caseload)
    except service_directory.ServiceError as error:
        refuse(str(error))
    db.session.commit()
    click.echo(f"added service {service.code} ({service.name}, {service.nation})")


@services_cli.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
def services_import(file: Path) -> None:
    """Add or update services from a CSV `code,name,nation,expected_caseload` (all-or-nothing)."""
    from portal.services import service_directory

    if not file.exists():
        refuse(f"{file}: no such file")
    raw = file.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("cp1252", errors="replace")
    report = service_directory.import_services(text)
    if report.refusals:
        for line in report.refusals:
            click.echo(line, err=True)
        click.echo(f"added 0, updated 0, unchanged 0, refused {report.refused}, nothing written")
        refuse("services import refused: nothing written")
    db.session.commit()
    click.echo(
        f"added {report.added}, updated {report.updated}, unchanged {report.unchanged}, refused 0"
    )


@users_cli.command("add")
@click.argument("email")
@click.option("--role", required=True)
@click.option("--service", "service_codes", multiple=True)
@click.option("--name", default="")
def users_add(email: str, role: str, service_codes: tuple[str, ...], name: str) -> None:
    """Add a user. The password is the first line of standard input, or prompted twice."""
    from portal.services import accounts

    services = []
    for code in service_codes:
        service = accounts.find_service(code)
        if service is None:
            refuse(f"Unknown service {code!r}")
        services.append(service)
    role = role.strip().lower()
    if role not in ("clinician", "lead", "admin"):
        refuse(f"Unknown role {role!r}: choose one of clinician, lead, admin")
    if sys.stdin.isatty():
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    try:
        user = accounts.create_user(email, name, role, services, password=password)
    except accounts.AccountError as error:
        refuse(str(error))
    db.session.commit()
    click.echo(f"added {user.role} {user.email}")


@click.command("demo")
@click.option("--today", default=None, help="Pretend today is this date (YYYY-MM-DD).")
def demo(today: str | None) -> None:
    """Fill an empty database with a realistic synthetic demo."""
    from datetime import date

    from portal.services import demo as demo_data

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
    summary = demo_data.fill(today=day, progress=progress_bar)
    db.session.commit()
    click.echo(summary)


def init_app(app: Flask) -> None:
    app.cli.add_command(services_cli)
    app.cli.add_command(users_cli)
    from portal.offline.cli import rotate_device_key_command

    users_cli.add_command(rotate_device_key_command)
    app.cli.add_command(demo)
    from portal.cli_backup import backup_cli

    app.cli.add_command(backup_cli)

    from portal.imports.cli import records_cli

    app.cli.add_command(records_cli)

    from portal.kpis.cli import kpis_cli

    app.cli.add_command(kpis_cli)
