"""`flask records import` and `flask records export` (cli.md)."""

from __future__ import annotations

import sys
from contextlib import ExitStack
from pathlib import Path

import click
from flask import current_app
from flask.cli import AppGroup

from portal.audit.actor import Actor
from portal.command_line import progress_bar, refuse
from portal.extensions import db
from portal.operations import statistics
from portal.operations.progress import ProgressBar

records_cli = AppGroup("records", help="Import and export fracture episodes as CSV.")


def _service(code: str | None):
    from portal.accounts import users as accounts

    if code is None:
        return None
    service = accounts.find_service(code)
    if service is None:
        refuse(f"Unknown service {code!r}")
    return service


@records_cli.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--service", "service_code", default=None, help="The service to import into.")
@click.option(
    "--keep-valid", is_flag=True, help="Write the rows that pass even if others are refused."
)
@click.option("--dry-run", is_flag=True, help="Check the file and report; write nothing.")
def records_import(file: Path, service_code: str | None, keep_valid: bool, dry_run: bool) -> None:
    """Import episodes from a CSV file (canonical or FLS-DB headers)."""
    from portal.records import importing as record_import
    from portal.records.csv_files import FileRefused

    service = _service(service_code)
    if not file.is_file():
        refuse(f"{file}: no such file")

    def on_refusal(refusal) -> None:
        click.echo(str(refusal), err=True)

    with ExitStack() as stack:
        bar: ProgressBar | None = None
        shown = 0

        def progress(rows_done: int, total: int) -> None:
            nonlocal bar, shown
            # The bar is made at the first chunk, when the number of rows is known.
            if bar is None:
                bar = stack.enter_context(progress_bar(total, "Importing"))
            bar.update(rows_done - shown)
            shown = rows_done

        try:
            report = record_import.import_file(
                file,
                Actor.command_line(),
                service=service,
                file_name=file.name,
                keep_valid=keep_valid,
                dry_run=dry_run,
                max_bytes=current_app.config.get("IMPORT_MAX_BYTES"),
                on_refusal=on_refusal,
                progress=progress,
            )
        except (FileRefused, record_import.StaleRecords) as error:
            refuse(str(error))
    if report.written:
        db.session.commit()
        statistics.after_bulk_write(report.added + report.updated)
    else:
        db.session.rollback()
    for name in report.unknown_columns:
        click.echo(f"unknown column: {name}")
    click.echo(report.summary())
    if report.refused:
        sys.exit(1)


@records_cli.command("export")
@click.option(
    "--service", "service_code", required=True, help="The service whose episodes to export."
)
@click.option(
    "--format",
    "file_format",
    type=click.Choice(["canonical", "flsdb"]),
    default="canonical",
    help="canonical CSV (dataset.md), or the file FLS-DB takes in (Windows-1252).",
)
def records_export(service_code: str, file_format: str) -> None:
    """Write the service's episodes as canonical CSV (or FLS-DB's format) to standard output."""
    from portal.records import export as record_export
    from portal.records import flsdb

    service = _service(service_code)
    count = record_export.count_episodes(service)
    kind = "FLS-DB CSV" if file_format == "flsdb" else "CSV"
    record_export.record_export(Actor.command_line(), service, count, via="command line", kind=kind)
    db.session.commit()
    with progress_bar(count, "Exporting") as bar:
        if file_format == "flsdb":
            with click.open_file("-", "wb") as stdout:  # Windows-1252 bytes, as FLS-DB takes them
                for chunk in flsdb.flsdb_file(service, progress=bar.update):
                    stdout.write(chunk)
            return
        for text in record_export.export_csv(service, progress=bar.update):
            click.echo(text, nl=False)
