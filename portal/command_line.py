"""What every command of the portal shares (spec/cli.md): exit 1 for a refusal with the reason on
standard error (exit 2, wrong usage, is click's own), and a progress bar on standard error only
when it is a terminal."""

from __future__ import annotations

import sys
from contextlib import AbstractContextManager
from typing import NoReturn

import click

from portal.extensions import db
from portal.operations.progress import ProgressBar, quiet


def refuse(message: str) -> NoReturn:
    """Say why on standard error and exit 1, writing nothing."""
    db.session.rollback()
    click.echo(message, err=True)
    sys.exit(1)


def progress_bar(total: int, label: str) -> AbstractContextManager[ProgressBar]:
    """A progress bar on standard error when it is a terminal; silent otherwise (cli.md)."""
    if sys.stderr.isatty():
        return click.progressbar(length=total, label=label, file=sys.stderr)
    return quiet(total, label)
