"""`flask kpis export`, `flask kpis funnel` and `flask outcomes export` (spec/cli.md,
spec/kpis.md "Export", spec/outcomes.md "Export")."""

from __future__ import annotations

import click
from flask.cli import AppGroup

from portal.command_line import refuse

kpis_cli = AppGroup("kpis", help="FLS-DB key performance indicators.")
outcomes_cli = AppGroup("outcomes", help="Outcomes: second fractures and deaths.")


def _period_options(command):  # type: ignore[no-untyped-def]
    """--from, --to and --as-of, as every export takes them."""
    command = click.option(
        "--as-of",
        "as_of",
        default=None,
        metavar="YYYY-MM-DD",
        help="Read the figures as of this day (default today).",
    )(command)
    command = click.option(
        "--to", "end", required=True, metavar="YYYY-MM", help="Last month of the period."
    )(command)
    return click.option(
        "--from", "start", required=True, metavar="YYYY-MM", help="First month of the period."
    )(command)


@kpis_cli.command("export")
@_period_options
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


@kpis_cli.command("funnel")
@click.option("--kpi", "kpi", required=True, metavar="N", help="The KPI, 3 to 11.")
@_period_options
def funnel(kpi: str, start: str, end: str, as_of: str | None) -> None:
    """Write one KPI's funnel plot (every service's point and limits) as CSV."""
    from portal.kpi_pages import choices, comparison

    try:
        number = choices.funnel_kpi(kpi)
        request = choices.export_request(start, end, as_of, None)
    except choices.KpiRequestError as error:
        refuse(str(error))
    click.echo(comparison.funnel_csv(number, request), nl=False)


@outcomes_cli.command("export")
@_period_options
@click.option(
    "--service",
    "service_code",
    default=None,
    metavar="CODE",
    help="Only this service (no national rows).",
)
def outcomes_export(start: str, end: str, as_of: str | None, service_code: str | None) -> None:
    """Write the outcome measures (refracture, mortality) as CSV to standard output."""
    from portal.kpi_pages import choices, outcome_figures

    try:
        request = choices.export_request(start, end, as_of, service_code)
    except choices.KpiRequestError as error:
        refuse(str(error))
    click.echo(outcome_figures.export_csv(request), nl=False)
