"""The new fractures recorded at 12 months (FLS-DB 7.06-7.13): how many there were since the index
fracture and up to three of them, each with its site and date, only when there was one."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from kpis.dataset import MAX_NEW_FRACTURES_DESCRIBED, REFRACTURE_DETAIL_FIELDS
from portal.journey.rules.values import field_label, is_empty

ORDINALS = ("first", "second", "third")


def described(number: int) -> tuple[str, str]:
    """The (site, date) fields of the nth new fracture (1-based)."""
    return f"refracture{number}_site", f"refracture{number}_date"


def check_new_fractures(episode: Mapping[str, Any], add: Callable[[str, str], None]) -> None:
    """Detail only with "new fracture: Yes"; a date needs its site; the second needs the first;
    the number of new fractures is at least the number described."""
    if episode.get("refracture") != "Yes":
        for field in REFRACTURE_DETAIL_FIELDS:
            if not is_empty(episode.get(field)):
                add(
                    field,
                    f"{field_label(field)} can only be given when "
                    f"{field_label('refracture').lower()} is Yes",
                )
        return
    count = 0
    for number in range(1, MAX_NEW_FRACTURES_DESCRIBED + 1):
        site, day = described(number)
        has_site, has_date = not is_empty(episode.get(site)), episode.get(day) is not None
        if has_date and not has_site:
            add(site, f"{field_label(site)} is required with its date")
        if not (has_site or has_date):
            continue
        count = number
        if number > 1 and is_empty(episode.get(described(number - 1)[0])):
            add(
                site,
                f"Describe the {ORDINALS[number - 2]} new fracture before the {ORDINALS[number - 1]}",
            )
    stated = episode.get("refracture_count")
    if stated is not None and stated < count:
        add(
            "refracture_count",
            f"{field_label('refracture_count')} cannot be fewer than the new fractures "
            f"described ({count})",
        )
