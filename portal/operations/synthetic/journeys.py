"""What happens on a synthetic patient's journey: the fracture, identification, assessment, DXA,
falls, the treatment recommendation and the two follow-ups, each as likely and as prompt as the
service's profile makes it; and `generate`, which makes the patients and their episodes."""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import date, timedelta
from typing import Any

from kpis import dataset as ds
from portal.operations.synthetic.direct_care import People
from portal.operations.synthetic.people import (
    NhsNumbers,
    Row,
    ServiceProfile,
    make_profiles,
    patient,
    pick,
)
from portal.operations.synthetic.risk_and_treatment import enrich

FIRST_FRACTURE_DATE = ds.AUDIT_START_DATE
# Some 12-16 week contacts happen up to two weeks after the window closes.
LATE_CONTACT_DAYS = 14

_SITE_WEIGHTS = {"Hip": 20, "Spine": 12, "Wrist": 28, "Humerus": 15, "Pelvis": 8, "Other": 17}
_DRUG_WEIGHTS = {
    "Alendronate": 55,
    "Zoledronate": 14,
    "Denosumab": 12,
    "Risedronate": 8,
    "Ibandronate": 3,
    "Teriparatide": 3,
    "Romosozumab": 2,
    "HRT": 1,
    "Raloxifene": 1,
    "Abaloparatide": 0.5,
    "Strontium ranelate": 0.5,
}
# Audited fields a struggling service leaves empty (never ones other rules depend on).
_SKIPPABLE = (
    "postcode",
    "care_home_resident",
    "admitted",
    "previous_fracture",
    "smoker",
    "on_bone_therapy_at_fracture",
    "falls_assessed",
    "calcium_vitd",
)


def _ordered(values: Iterable[str], order: Sequence[str]) -> str:
    chosen = set(values)
    return ";".join(v for v in order if v in chosen)


def _after(start: date, mean_days: float, rng: random.Random, minimum: int = 0) -> date:
    return start + timedelta(days=minimum + int(rng.expovariate(1 / max(mean_days, 1))))


def _fracture_dates(rng: random.Random, start: date, end: date, count: int) -> list[date]:
    """Fracture dates between start and end, a little more in winter (falls on ice)."""
    span = (end - start).days
    dates: list[date] = []
    while len(dates) < count:
        day = start + timedelta(days=rng.randint(0, span))
        if day.month in (12, 1, 2) or rng.random() < 0.85:
            dates.append(day)
    return dates


def _sites(rng: random.Random) -> str:
    sites = {pick(rng, _SITE_WEIGHTS)}
    if rng.random() < 0.07:
        sites.add(pick(rng, _SITE_WEIGHTS))
    return _ordered(sites, ds.FRACTURE_SITES)


def _episode(
    rng: random.Random,
    profile: ServiceProfile,
    patient: Mapping[str, Any],
    fracture: date,
    limit: date,
) -> Row:
    """One episode whose every date is on/before `limit` (today, or the date of death)."""
    male = patient["sex"] == "Male"
    care_home = patient["care_home_resident"] == "Yes"
    sites = _sites(rng)
    hip = "Hip" in sites
    e: Row = dict.fromkeys(ds.EPISODE_FIELDS)
    e["service_id"] = profile.id
    e["fracture_date"] = fracture
    e["fracture_sites"] = sites
    e["admitted"] = (
        "Yes"
        if hip or ("Pelvis" in sites and rng.random() < 0.7) or rng.random() < 0.15
        else pick(rng, {"No": 95, "Not known": 5})
    )

    identified = _after(fracture, 4 + 20 * (1 - profile.quality), rng)
    if identified > limit:
        return e  # too recent: the FLS has not met the patient yet
    e["identification_date"] = identified

    assessed = _after(identified, profile.assess_delay, rng)
    if rng.random() < profile.assess_rate and assessed <= limit:
        e["assessment_date"] = assessed
        _measurements_and_risks(rng, e, male)
        _dxa(rng, profile, e, care_home, assessed, limit)
        _falls(rng, profile, e, male)
        drug = _treatment(rng, profile, e, male)
        _followup16(rng, profile, e, male, drug, assessed, limit)
        _followup52(rng, profile, e, male, drug, assessed, limit)

    for name in _SKIPPABLE:
        if name in e and e[name] is not None and rng.random() < profile.missing_rate:
            e[name] = None
    return e


def _measurements_and_risks(rng: random.Random, e: Row, male: bool) -> None:
    e["height_cm"] = round(rng.gauss(175 if male else 161, 7), 0 if rng.random() < 0.8 else 1)
    e["weight_kg"] = round(rng.gauss(80 if male else 66, 13), 0 if rng.random() < 0.7 else 1)
    e["height_cm"] = min(max(e["height_cm"], 130), 205)
    e["weight_kg"] = min(max(e["weight_kg"], 35), 160)
    e["previous_fracture"] = pick(rng, {"Yes": 30, "No": 60, "Not known": 10})
    e["parental_hip_fracture"] = pick(rng, {"Yes": 9, "No": 55, "Not known": 36})
    e["smoker"] = pick(rng, {"Current": 12, "Ex": 30, "Never": 50, "Not known": 8})
    e["on_bone_therapy_at_fracture"] = pick(rng, {"Yes": 14, "No": 81, "Not known": 5})
    if rng.random() < 0.7:
        e["frax_major_percent"] = round(rng.uniform(4, 45), 1)


def _dxa(
    rng: random.Random,
    profile: ServiceProfile,
    e: Row,
    care_home: bool,
    assessed: date,
    limit: date,
) -> None:
    """Care-home residents are less often sent for a DXA, and wait longer for it."""
    dxa_rate = profile.dxa_rate * (0.55 if care_home else 1)
    roll = rng.random()
    if roll < dxa_rate:
        e["dxa_status"] = "Recommended"
        delay = profile.dxa_delay * (1.8 if care_home else 1)
        done = _after(assessed, delay, rng)
        if rng.random() < profile.dxa_done_rate * (0.7 if care_home else 1) and done <= limit:
            e["dxa_date"] = done
            e["t_score"] = round(min(max(rng.gauss(-2.1, 1.0), -5.5), 2.5), 1)
    elif roll < 0.96:
        e["dxa_status"] = "Not recommended"
        e["dxa_not_recommended_reason"] = pick(
            rng,
            {
                "Treat without DXA": 45 if care_home else 25,
                "Recent DXA": 25,
                "Patient declined": 15,
                "Not appropriate": 12,
                "Other": 5,
            },
        )
    else:
        e["dxa_status"] = "Not known"


def _falls(rng: random.Random, profile: ServiceProfile, e: Row, male: bool) -> None:
    """Men are less likely to get a falls assessment."""
    falls_rate = profile.falls_rate * (0.75 if male else 1)
    if rng.random() < falls_rate:
        e["falls_assessed"] = "Yes"
        e["falls_referred"] = pick(rng, {"Yes": 45, "No": 50, "Not known": 5})
    else:
        e["falls_assessed"] = pick(rng, {"No": 90, "Not known": 10})
        e["falls_referred"] = pick(rng, {"Yes": 15, "No": 70, "Not known": 15})


def _treatment(rng: random.Random, profile: ServiceProfile, e: Row, male: bool) -> str | None:
    """The bone therapy recommendation (men less often treated); returns the first drug, if any."""
    treat_rate = profile.treat_rate * (0.75 if male else 1)
    if rng.random() < treat_rate:
        drugs = {pick(rng, _DRUG_WEIGHTS)}
        if rng.random() < 0.02:  # e.g. an anabolic course followed by an antiresorptive
            drugs.add(pick(rng, _DRUG_WEIGHTS))
        e["bone_therapy"] = _ordered(drugs, ds.DRUGS)
    else:
        e["bone_therapy"] = pick(
            rng,
            {
                "Not appropriate": 30,
                "Informed decline": 20,
                "Referred for clinical opinion": 10,
                "Referred to GP to decide": 30,
                "Not known": 10,
            },
        )
    e["calcium_vitd"] = pick(rng, {"Yes": 78, "No": 17, "Not known": 5})
    first_choice: str = e["bone_therapy"].split(";")[0]
    return first_choice if first_choice in ds.DRUGS else None


def _took_place(
    rng: random.Random,
    e: Row,
    stage: str,
    window: tuple[int, int],
    rate: float,
    assessed: date,
    limit: date,
    late_days: int = 0,
) -> bool:
    """Whether a follow-up (`stage` "followup16" or "followup52") took place, in its window or up to
    `late_days` after. One that did not is answered (No or Not known) once its window has closed,
    and left empty while it may still happen."""
    fracture = e["fracture_date"]
    opens, closes = window
    contact = fracture + timedelta(days=rng.randint(opens, closes + late_days))
    if rng.random() < rate and assessed <= contact <= limit:
        e[f"{stage}_done"] = "Yes"
        e[f"{stage}_date"] = contact
        return True
    if fracture + timedelta(days=closes) < limit:
        e[f"{stage}_done"] = pick(rng, {"No": 85, "Not known": 15})
    return False


def _followup16(
    rng: random.Random,
    profile: ServiceProfile,
    e: Row,
    male: bool,
    drug: str | None,
    assessed: date,
    limit: date,
) -> None:
    """The 12-16 week contact: still on the drug recommended, less often for men."""
    window = ds.FOLLOWUP16_WINDOW_DAYS
    rate = profile.followup16_rate
    if not _took_place(rng, e, "followup16", window, rate, assessed, limit, LATE_CONTACT_DAYS):
        return
    stays = 0.8 * (0.85 if male else 1)
    if drug:
        e["therapy16"] = (
            drug
            if rng.random() < stays
            else pick(rng, {"Not started": 50, "Informed decline": 30, "No longer appropriate": 20})
        )
    else:
        e["therapy16"] = pick(
            rng, {"Not started": 70, "Referred for clinical opinion": 15, "Not known": 15}
        )
    e["strength_balance16"] = (
        "Yes" if rng.random() < profile.strength_rate else pick(rng, {"No": 80, "Not known": 20})
    )


def _followup52(
    rng: random.Random,
    profile: ServiceProfile,
    e: Row,
    male: bool,
    drug: str | None,
    assessed: date,
    limit: date,
) -> None:
    """The 12-month follow-up (48-56 weeks): still on the drug started, less often for men."""
    window = ds.FOLLOWUP52_WINDOW_DAYS
    if not _took_place(rng, e, "followup52", window, profile.followup52_rate, assessed, limit):
        return
    adherent = 0.65 * (0.8 if male else 1)
    started = e["therapy16"] in ds.DRUGS if e["therapy16"] else bool(drug)
    if started and rng.random() < adherent:
        e["therapy52"] = e["therapy16"] if e["therapy16"] in ds.DRUGS else drug
    else:
        e["therapy52"] = pick(
            rng,
            {
                "Not started": 40,
                "No longer appropriate": 25,
                "Informed decline": 25,
                "Not known": 10,
            },
        )
    e["refracture"] = pick(rng, {"No": 92, "Yes": 3, "Not known": 5})


def generate(
    rng: random.Random,
    services: Sequence[Mapping[str, Any]],
    start: date,
    end: date,
    count: int,
    today: date,
    death_rate: float = 0.05,
    refracture_rate: float = 0.03,
) -> Iterator[tuple[Row, list[Row]]]:
    """Yield (patient, episodes) row dicts, `count` episodes in all, fracture dates from start to
    end (on/before today), shared among the services by identified caseload.

    A refracture's episode carries `previous_index`, the position of the earlier episode in the
    same list; a soft-deleted episode carries `deleted_reason`. Ids are left to the writer.
    `death_rate` and `refracture_rate` are the shares of patients who die (20-900 days after)
    and who break a bone again (120-900 days after).
    """
    start = max(start, FIRST_FRACTURE_DATE)
    end = min(end, today)
    profiles = make_profiles(rng, services)
    numbers = NhsNumbers(rng)
    # The 999 test range holds about 909,000 valid numbers: a data set with more patients (ten
    # years of a nation) gives each service a walk of its own. The schema asks a number to be
    # unique within a service only, and no figure joins services by NHS number.
    own_numbers = (
        {p.id: NhsNumbers(random.Random(f"nhs-numbers-{p.code}")) for p in profiles}
        if count > NhsNumbers.CAPACITY
        else None
    )
    # Issue 19's fields and treatment plans come from a generator of their own, so every value
    # drawn from `rng` stays as it was (risk_and_treatment.py).
    extra = random.Random(f"risk-and-treatment-{start.isoformat()}-{count}")
    # Names and numbers for direct care from a stream of their own, so that the clinical rows
    # drawn from `rng` are the same with or without them.
    people = People(random.Random(f"direct-care-{start.isoformat()}-{today.isoformat()}"))
    running_totals = list(itertools.accumulate(p.weight for p in profiles))
    made = 0
    while made < count:
        batch = min(10_000, count - made)
        for fracture in _fracture_dates(rng, start, end, batch):
            if made >= count:
                break
            profile = rng.choices(profiles, cum_weights=running_totals)[0]
            number = next(own_numbers[profile.id] if own_numbers else numbers)
            person = people.add(patient(rng, profile, fracture, number))
            limit = today
            if rng.random() < death_rate:  # died during the follow-up year or later
                death = fracture + timedelta(days=rng.randint(20, 900))
                if death <= today:
                    person["date_of_death"] = death
                    limit = death
            episodes = [_episode(rng, profile, person, fracture, limit)]
            made += 1
            # About 3% fracture again; the later fracture is a new, linked episode.
            second = fracture + timedelta(days=rng.randint(120, 900))
            if made < count and rng.random() < refracture_rate and second <= limit:
                first = episodes[0]
                if first["followup52_date"] is not None:
                    first["refracture"] = "Yes" if second <= first["followup52_date"] else "No"
                later = _episode(rng, profile, person, second, limit)
                later["previous_index"] = 0
                if later["previous_fracture"] is not None:
                    later["previous_fracture"] = "Yes"
                episodes.append(later)
                made += 1
            for episode in episodes:
                if rng.random() < 0.003:
                    episode["deleted_reason"] = rng.choice(
                        (
                            "Entered twice by mistake",
                            "Not a fragility fracture: road traffic accident",
                        )
                    )
            enrich(extra, episodes, limit)
            yield person, episodes
