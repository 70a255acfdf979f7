"""`flask users add` (spec/cli.md)."""

from __future__ import annotations

import sys

import click
from flask.cli import AppGroup

from portal.audit.actor import Actor
from portal.command_line import refuse
from portal.extensions import db

users_cli = AppGroup("users", help="Manage user accounts.")


@users_cli.command("add")
@click.argument("email")
@click.option("--role", required=True)
@click.option("--service", "service_codes", multiple=True)
@click.option("--name", default="")
def users_add(email: str, role: str, service_codes: tuple[str, ...], name: str) -> None:
    """Add a user. The password is the first line of standard input, or prompted twice."""
    from portal.accounts import users as accounts

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
        user = accounts.create_user(
            Actor.command_line(), email, name, role, services, password=password
        )
    except accounts.AccountError as error:
        refuse(str(error))
    db.session.commit()
    click.echo(f"added {user.role} {user.email}")
