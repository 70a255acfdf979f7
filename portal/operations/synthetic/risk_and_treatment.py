"""Beyond the first year, for synthetic journeys: the type of fracture, FRAX hip and the NOGG
category, the falls-risk items, the new fractures at 12 months, and a treatment plan over the
years for each patient who started a drug (some denosumab injections late, some missed, a few
courses stopped or switched).

Drawn from a generator of its own (`extra`), never from the journeys' one, so adding these
fields leaves every other generated value, and so every KPI of the synthetic data, as it was.
"""

from __future__ import annotations

import random
from datetime import date, timedelta
from typing import Any

from kpis import dataset as ds
from portal.journey.treatment import (
    ANABOLIC_COURSE_MONTHS,
    DENOSUMAB,
    REVIEW_MONTHS,
    USUAL_ROUTE,
    add_months,
)
from portal.operations.synthetic.people import Row, pick

# The NOGG category a FRAX major probability usually falls in (age-dependent thresholds made
# simple: the clinician judges with the NOGG tool, the portal never computes it).
_NOGG_BANDS = ((10.0, "Low"), (20.0, "Intermediate"), (30.0, "High"))


def _nogg(frax_major: float | None, rng: random.Random) -> str:
    if frax_major is None:
        return pick(rng, {"Intermediate": 40, "High": 45, "Very high": 15})
    for upper, category in _NOGG_BANDS:
        if frax_major < upper:
            return category
    return "Very high"


def _assessment(e: Row, rng: random.Random) -> None:
    frax = e.get("frax_major_percent")
    if frax is not None:
        e["frax_hip_percent"] = round(min(frax * rng.uniform(0.15, 0.6), 100), 1)
        e["frax_with_bmd"] = "With BMD" if e.get("dxa_date") else "Without BMD"
    if rng.random() < 0.85:
        e["nogg_risk_category"] = _nogg(frax, rng)
    if e.get("falls_assessed") == "Yes":
        for field in ds.FALLS_RISK_FIELDS:
            if field == "mobility_before_fracture":
                e[field] = pick(rng, dict(zip(ds.MOBILITY, (55, 25, 10, 5, 2, 3), strict=True)))
            else:
                e[field] = pick(rng, {"Yes": 30, "No": 62, "Not known": 8})


def _new_fractures(e: Row, later: list[Row], rng: random.Random) -> None:
    """At 12 months, a new fracture: its site and date (the later episode's when there is one)."""
    if e.get("refracture") != "Yes" or e.get("followup52_date") is None:
        return
    e["refracture_count"] = 1
    if later:
        e["refracture1_site"] = later[0]["fracture_sites"].split(";")[0]
        e["refracture1_date"] = later[0]["fracture_date"]
    else:
        span = (e["followup52_date"] - e["fracture_date"]).days
        e["refracture1_site"] = pick(rng, {"Wrist": 30, "Spine": 25, "Hip": 20, "Other": 25})
        e["refracture1_date"] = e["fracture_date"] + timedelta(days=rng.randint(30, span))


def _doses(started: date, months: int, limit: date, rng: random.Random) -> tuple[list[date], bool]:
    """Doses after the first every `months`, some late; (dates, stopped coming) up to `limit`."""
    doses: list[date] = []
    last = started
    while True:
        late = rng.random() < 0.15
        due = add_months(last, months) + timedelta(
            days=rng.randint(30, 100) if late else rng.randint(-14, 10)
        )
        if due > limit:
            return doses, False
        if rng.random() < 0.05:  # never came back: the worklist shows it overdue
            return doses, True
        doses.append(due)
        last = due


def _plan(e: Row, limit: date, rng: random.Random) -> list[dict[str, Any]]:
    """The courses of a patient who started the drug seen at 12-16 weeks."""
    drug = e.get("therapy16")
    if drug not in USUAL_ROUTE or drug in ds.WITHDRAWN_DRUGS:
        return []
    started = e["followup16_date"] - timedelta(days=rng.randint(7, 60))
    started = max(started, e["fracture_date"])
    course: dict[str, Any] = {"drug": drug, "route": USUAL_ROUTE[drug], "started_on": started}
    course.update(doses=[], reviews=[], stopped_on=None, stop_reason=None)
    courses = [course]
    if drug in (DENOSUMAB, "Zoledronate"):
        course["doses"], _ = _doses(started, 6 if drug == DENOSUMAB else 12, limit, rng)
    if drug in REVIEW_MONTHS:
        review = add_months(started, REVIEW_MONTHS[drug]) + timedelta(days=rng.randint(-20, 60))
        if review <= limit and rng.random() < 0.7:
            course["reviews"] = [review]
    if drug in ANABOLIC_COURSE_MONTHS:
        end = add_months(started, ANABOLIC_COURSE_MONTHS[drug])
        if end <= limit and rng.random() < 0.8:
            course.update(stopped_on=end, stop_reason="Switched to another drug")
            follow_on = {"drug": "Zoledronate", "route": "Intravenous", "started_on": end}
            follow_on.update(doses=_doses(end, 12, limit, rng)[0], reviews=[], stopped_on=None)
            follow_on["stop_reason"] = None
            course["follow_on_index"] = 1
            courses.append(follow_on)
    elif drug == DENOSUMAB and course["doses"] and rng.random() < 0.08:
        stop = course["doses"][-1] + timedelta(days=rng.randint(30, 150))
        if stop <= limit:  # stopped without a follow-on: stays on the worklist
            course.update(stopped_on=stop, stop_reason="Patient choice")
            course["no_follow_on_confirmed"] = True
    return courses


def enrich(extra: random.Random, episodes: list[Row], limit: date) -> None:
    """Add the fields of issue 19 and the treatment plans to one patient's episodes."""
    for index, e in enumerate(episodes):
        if e.get("identification_date") is not None:
            e["fracture_type"] = pick(
                extra,
                {"Clinical": 88, "Incidental finding on imaging": 8, "Not known": 4}
                if "Spine" not in (e.get("fracture_sites") or "")
                else {"Clinical": 55, "Incidental finding on imaging": 40, "Not known": 5},
            )
        if e.get("assessment_date") is not None:
            _assessment(e, extra)
        _new_fractures(e, episodes[index + 1 :], extra)
        if e.get("followup16_date") is not None and not e.get("deleted_reason"):
            e["treatment_courses"] = _plan(e, limit, extra)
