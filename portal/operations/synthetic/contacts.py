"""The demo's day of work (issue 18): contact attempts on some patients waiting for their 16-week
contact or 12-month follow-up, and letters to GPs and patients after recent assessments, each
made by the service's nurse through the journey's own functions (so each is audited)."""

from __future__ import annotations

import random
from collections.abc import Mapping
from datetime import date, timedelta

from sqlalchemy import select

from portal.audit.actor import Actor
from portal.extensions import db
from portal.journey import contacts, letters, worklists
from portal.models import Episode, Service, User

OUTCOMES = {"No answer": 6.0, "Wrong number": 1.0, "Reached": 1.5, "Declined": 0.5}
NOTES = (
    None,
    "Left a message on the answerphone",
    "Daughter answered: will ring back",
    "Number unobtainable",
    "Asked us to call after 2pm",
)


def add_day_of_work(
    rng: random.Random, services: Mapping[str, Service], nurses: Mapping[str, User], today: date
) -> tuple[int, int]:
    """Attempts and letters for each service with a nurse; returns how many of each."""
    attempts = written = 0
    for code, service in services.items():
        nurse = nurses.get(code)
        if nurse is None:
            continue
        actor = Actor.for_user(nurse, None, service.id)
        for key in ("followup16", "followup52"):
            page = worklists.page(worklists.WORKLISTS[key], service, today, page_size=40)
            for row in page.rows:
                if rng.random() < 0.4:
                    continue
                episode = db.session.get(Episode, row.episode_id)
                assert episode is not None
                for tries in range(rng.randint(1, 3)):
                    made_on = max(
                        episode.fracture_date,
                        today - timedelta(days=rng.randint(0, 3) + 4 * (2 - tries)),
                    )
                    outcome = rng.choices(list(OUTCOMES), weights=list(OUTCOMES.values()))[0]
                    contacts.write_attempt(
                        actor,
                        episode,
                        {
                            "purpose": key,
                            "made_on": made_on,
                            "method": "Telephone" if rng.random() < 0.85 else "Letter",
                            "outcome": outcome,
                            "note": rng.choice(NOTES),
                        },
                    )
                    attempts += 1
        written += _letters(rng, actor, service, nurse, today)
    return attempts, written


def _letters(rng: random.Random, actor: Actor, service: Service, nurse: User, today: date) -> int:
    """Letters after a few of the service's recent assessments: most final, one a draft."""
    recent = db.session.scalars(
        select(Episode)
        .where(
            Episode.service_id == service.id,
            Episode.deleted_at.is_(None),
            Episode.assessment_date.is_not(None),
            Episode.bone_therapy.is_not(None),
            Episode.fracture_date >= today - timedelta(days=150),
        )
        .order_by(Episode.fracture_date.desc(), Episode.id)
        .limit(4)
    ).all()
    count = 0
    for number, episode in enumerate(recent):
        for kind in ("gp", "patient"):
            letter = letters.create_letter(actor, episode, kind, nurse.display_name, today)
            if number or kind == "gp":  # the newest episode's patient letter stays a draft
                letters.make_final(actor, letter)
            count += 1
    return count
