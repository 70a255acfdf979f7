"""The `flask` commands of every area, registered in one place (spec/cli.md). Each area's commands
live in its own `cli.py` and share `portal.command_line`; nothing imports this module back."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from portal.accounts.cli import users_cli
    from portal.admin.cli import services_cli
    from portal.kpi_pages.cli import kpis_cli, outcomes_cli
    from portal.offline.cli import rotate_device_key_command
    from portal.operations.cli import backup_cli, demo
    from portal.records.cli import records_cli

    users_cli.add_command(rotate_device_key_command)
    for command in (
        services_cli,
        users_cli,
        demo,
        backup_cli,
        records_cli,
        kpis_cli,
        outcomes_cli,
    ):
        app.cli.add_command(command)
