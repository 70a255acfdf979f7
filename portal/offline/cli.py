"""`flask users rotate-device-key EMAIL`: when a device is lost, what it keeps becomes unreadable."""

from __future__ import annotations

import click
from flask.cli import with_appcontext

from portal.extensions import db


@click.command("rotate-device-key")
@click.argument("email")
@click.option("--reason", default="", help="Why, for the audit trail (e.g. laptop lost).")
@with_appcontext
def rotate_device_key_command(email: str, reason: str) -> None:
    """Rotate a user's device key: drafts and waiting saves on every device become unreadable."""
    from portal.accounts import users as accounts
    from portal.audit.actor import Actor
    from portal.command_line import refuse
    from portal.offline import device_keys

    user = accounts.find_user_by_email(email)
    if user is None:
        refuse(f"no user with email {email}")
    generation = device_keys.rotate_device_key(Actor.command_line(), user, reason)
    db.session.commit()
    click.echo(f"rotated the device key of {user.email}: generation {generation}")
