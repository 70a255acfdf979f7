"""The portal's one clock. "Today" is the date in Europe/London wherever the server runs
(dataset.md); times are stored in UTC without a zone, as the database columns hold them.

Nothing else in the portal reads the system clock. Tests set it by travelling in time
(time-machine, tests/conftest.py), so the whole suite runs as of any chosen date.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

LONDON = ZoneInfo("Europe/London")


def now() -> datetime:
    """This moment, as an aware UTC datetime."""
    return datetime.now(UTC)


def utcnow() -> datetime:
    """This moment in UTC without a zone: the form every timestamp column stores."""
    return datetime.now(UTC).replace(tzinfo=None)


def today() -> date:
    """Today's date in Europe/London."""
    return datetime.now(LONDON).date()
