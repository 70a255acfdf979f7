"""`flask kpis export` (spec/cli.md, spec/kpis.md "Export")."""

from __future__ import annotations

import click
from flask.cli import AppGroup

from portal.command_line import refuse

kpis_cli = AppGroup("kpis", help="FLS-DB key performance indicators.")


@kpis_cli.command("export")
@click.option(
    "--from", "start", required=True, metavar="YYYY-MM", help="First month of the period."
)
@click.option("--to", "end", required=True, metavar="YYYY-MM", help="Last month of the period.")
@click.option(
    "--as-of",
    "as_of",
    default=None,
    metavar="YYYY-MM-DD",
    help="Read the figures as of this day (default today).",
)
@click.option(
    "--service",
    "service_code",
    default=None,
    metavar="CODE",
    help="Only this service (no national rows).",
)
def export(start: str, end: str, as_of: str | None, service_code: str | None) -> None:
    """Write the KPI figures as CSV to standard output."""
    from portal.kpi_pages import choices
    from portal.kpi_pages import figures as kpi_figures

    try:
        request = choices.export_request(start, end, as_of, service_code)
    except choices.KpiRequestError as error:
        refuse(str(error))
    click.echo(kpi_figures.export_csv(request), nl=False)
