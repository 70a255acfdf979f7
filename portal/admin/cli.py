"""`flask services add` and `flask services import` (spec/cli.md)."""

from __future__ import annotations

from pathlib import Path

import click
from flask.cli import AppGroup

from portal.audit.actor import Actor
from portal.command_line import refuse
from portal.extensions import db

services_cli = AppGroup("services", help="Manage FLS services.")


@services_cli.command("add")
@click.argument("code")
@click.option("--name", required=True)
@click.option("--nation", required=True)
@click.option("--expected-caseload", "expected_caseload", required=True)
def services_add(code: str, name: str, nation: str, expected_caseload: str) -> None:
    """Add a service; code and nation in any case."""
    from portal.admin import service_directory

    try:
        service = service_directory.add_service(
            Actor.command_line(), code, name, nation, expected_caseload
        )
    except service_directory.ServiceError as error:
        refuse(str(error))
    db.session.commit()
    click.echo(f"added service {service.code} ({service.name}, {service.nation})")


@services_cli.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
def services_import(file: Path) -> None:
    """Add or update services from a CSV `code,name,nation,expected_caseload` (all-or-nothing)."""
    from portal.admin import service_directory

    if not file.exists():
        refuse(f"{file}: no such file")
    raw = file.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("cp1252", errors="replace")
    report = service_directory.import_services(Actor.command_line(), text)
    if report.refusals:
        for line in report.refusals:
            click.echo(line, err=True)
        click.echo(f"added 0, updated 0, unchanged 0, refused {report.refused}, nothing written")
        refuse("services import refused: nothing written")
    db.session.commit()
    click.echo(
        f"added {report.added}, updated {report.updated}, unchanged {report.unchanged}, refused 0"
    )
