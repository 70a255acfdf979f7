"""Realistic synthetic FLS records, for the demo and for benchmark-sized databases.

The spread follows spec/reference.md: services range from good to poor (assessment delays, DXA
rates, follow-up completion, missing audited fields); about a fifth of index fractures are hips and
5-20% spines; men are less likely to get a falls assessment and treatment; care-home residents
wait longer for a DXA; follow-ups not yet due are left empty. Every row satisfies the rules of
spec/dataset.md. Everything is drawn from the `random.Random` passed in, so the same seed and the
same `today` give the same rows.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, select, text

from kpis import dataset as ds
from portal import clock
from portal.audit import events as audit
from portal.audit.actor import Actor
from portal.models import Episode, Patient

FIRST_FRACTURE_DATE = date(2016, 1, 1)

# Postcode areas by nation, so a service's patients live around it.
POSTCODE_AREAS = {
    "England": (
        "LS",
        "BD",
        "BS",
        "BA",
        "LN",
        "NG",
        "M",
        "SK",
        "B",
        "CV",
        "NE",
        "SR",
        "PL",
        "EX",
        "OX",
    ),
    "Wales": ("CF", "NP", "SA", "LL", "LD", "SY"),
    "Northern Ireland": ("BT",),
}
# Letters never used in the inward part of a UK postcode.
_INWARD_LETTERS = "ABDEFGHJLNPQRSTUWXYZ"

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
_PATIENT_SKIPPABLE = ("postcode", "care_home_resident")


@dataclass
class ServiceProfile:
    """How well one service does: rates are probabilities, delays are mean days."""

    id: int
    code: str
    nation: str
    weight: float  # share of the episodes
    quality: float  # 0 (struggling) .. 1 (excellent)
    assess_rate: float = 0.0
    assess_delay: float = 0.0
    dxa_rate: float = 0.0
    dxa_done_rate: float = 0.0
    dxa_delay: float = 0.0
    falls_rate: float = 0.0
    treat_rate: float = 0.0
    followup16_rate: float = 0.0
    followup52_rate: float = 0.0
    strength_rate: float = 0.0
    missing_rate: float = 0.0
    areas: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        q = self.quality
        self.assess_rate = 0.55 + 0.43 * q
        self.assess_delay = 110 - 90 * q
        self.dxa_rate = 0.30 + 0.55 * q
        self.dxa_done_rate = 0.55 + 0.40 * q
        self.dxa_delay = 130 - 100 * q
        self.falls_rate = 0.25 + 0.70 * q
        self.treat_rate = 0.35 + 0.40 * q
        self.followup16_rate = 0.05 + 0.85 * q
        self.followup52_rate = 0.03 + 0.80 * q
        self.strength_rate = 0.02 + 0.30 * q
        self.missing_rate = 0.12 * (1 - q) ** 2 + 0.003


def identified_per_year(expected_caseload: int, quality: float) -> float:
    """Episodes a service of this quality records a year: services identify from a fifth to
    four fifths of their catchment's fragility fractures (KPI 2; national 37%)."""
    return expected_caseload * (0.2 + 0.6 * quality)


def make_profiles(rng: random.Random, services: Sequence[dict[str, Any]]) -> list[ServiceProfile]:
    """One profile per service dict (`id`, `code`, `nation`, `expected_caseload`, optional
    `quality` 0-1; without it the quality is drawn, from near 0 to near 1 as in the audit)."""
    profiles = []
    for service in services:
        quality = service.get("quality")
        if quality is None:
            quality = rng.betavariate(2, 2)
        areas = POSTCODE_AREAS[service["nation"]]
        # A service's patients come from one or two neighbouring postcode areas.
        own = tuple(rng.sample(areas, min(2, len(areas))))
        identified = identified_per_year(service["expected_caseload"], quality)
        profiles.append(
            ServiceProfile(
                id=service["id"],
                code=service["code"],
                nation=service["nation"],
                weight=identified,
                quality=quality,
                areas=own,
            )
        )
    return profiles


def nhs_check_digit(nine: str) -> int | None:
    """The modulus-11 check digit of nine digits, or None when none exists (remainder 10)."""
    total = sum(int(d) * w for d, w in zip(nine, range(10, 1, -1), strict=True))
    check = 11 - total % 11
    if check == 11:
        return 0
    return None if check == 10 else check


class NhsNumbers:
    """Distinct valid NHS numbers in the 999 test range, in a seeded, scattered order."""

    def __init__(self, rng: random.Random):
        # A step coprime with 10**6 visits every 6-digit suffix once in a scattered order.
        self.step = rng.choice((7919, 104729, 15485863 % 10**6 or 1, 86028121 % 10**6))
        while self.step % 2 == 0 or self.step % 5 == 0:
            self.step += 1
        self.position = rng.randrange(10**6)
        self.issued = 0

    def __next__(self) -> str:
        while self.issued < 10**6:
            self.issued += 1
            self.position = (self.position + self.step) % 10**6
            nine = f"999{self.position:06d}"
            check = nhs_check_digit(nine)
            number = f"{nine}{check}" if check is not None else None
            if number and len(set(number)) > 1:
                return number
        raise RuntimeError("the 999 test range of NHS numbers is used up")


def years_before(day: date, years: int) -> date:
    """The same day `years` earlier (28 February for 29 February)."""
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February
        return day.replace(year=day.year - years, day=28)


def _pick(rng: random.Random, weights: dict[str, float]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def _ordered(values: Iterable[str], order: Sequence[str]) -> str:
    chosen = set(values)
    return ";".join(v for v in order if v in chosen)


def _postcode(rng: random.Random, areas: Sequence[str]) -> str:
    area = rng.choice(areas)
    return (
        f"{area}{rng.randint(1, 29)} {rng.randint(0, 9)}"
        f"{rng.choice(_INWARD_LETTERS)}{rng.choice(_INWARD_LETTERS)}"
    )


def _after(start: date, mean_days: float, rng: random.Random, minimum: int = 0) -> date:
    return start + timedelta(days=minimum + int(rng.expovariate(1 / max(mean_days, 1))))


def _fracture_dates(rng: random.Random, start: date, end: date, count: int) -> list[date]:
    """Fracture dates between start and end, a little more in winter (falls on ice)."""
    span = (end - start).days
    dates = []
    while len(dates) < count:
        day = start + timedelta(days=rng.randint(0, span))
        if day.month in (12, 1, 2) or rng.random() < 0.85:
            dates.append(day)
    return dates


def _patient(rng: random.Random, profile: ServiceProfile, fracture: date, number: str) -> dict:
    sex = _pick(rng, {"Female": 74.0, "Male": 25.0, "Other": 0.3, "Not known": 0.7})
    age = int(rng.triangular(50, 101, 80))
    # Within the year after the birthday: the patient is `age` in whole years on the fracture date.
    born = years_before(fracture, age) - timedelta(days=rng.randint(0, 360))
    care_home = _pick(rng, {"Yes": 4 + max(0, age - 75) * 0.6, "No": 88.0, "Not known": 3.0})
    patient = {
        "service_id": profile.id,
        "nhs_number": number,
        "date_of_birth": born,
        "sex": sex,
        "postcode": _postcode(rng, profile.areas),
        "care_home_resident": care_home,
        "date_of_death": None,
    }
    for name in _PATIENT_SKIPPABLE:
        if rng.random() < profile.missing_rate:
            patient[name] = None
    return patient


def _sites(rng: random.Random) -> str:
    sites = {_pick(rng, _SITE_WEIGHTS)}
    if rng.random() < 0.07:
        sites.add(_pick(rng, _SITE_WEIGHTS))
    return _ordered(sites, ds.FRACTURE_SITES)


def _episode(
    rng: random.Random,
    profile: ServiceProfile,
    patient: dict,
    fracture: date,
    limit: date,
) -> dict:
    """One episode whose every date is on/before `limit` (today, or the date of death)."""
    male = patient["sex"] == "Male"
    care_home = patient["care_home_resident"] == "Yes"
    sites = _sites(rng)
    hip = "Hip" in sites
    e: dict[str, Any] = dict.fromkeys(ds.EPISODE_FIELDS)
    e["service_id"] = profile.id
    e["fracture_date"] = fracture
    e["fracture_sites"] = sites
    e["admitted"] = (
        "Yes"
        if hip or ("Pelvis" in sites and rng.random() < 0.7) or rng.random() < 0.15
        else _pick(rng, {"No": 95, "Not known": 5})
    )

    identified = _after(fracture, 4 + 20 * (1 - profile.quality), rng)
    if identified > limit:
        return e  # too recent: the FLS has not met the patient yet
    e["identification_date"] = identified

    assessed = _after(identified, profile.assess_delay, rng)
    if rng.random() < profile.assess_rate and assessed <= limit:
        _assessment(rng, profile, e, male, care_home, assessed, limit)

    for name in _SKIPPABLE:
        if name in e and e[name] is not None and rng.random() < profile.missing_rate:
            e[name] = None
    return e


def _assessment(rng, profile, e, male, care_home, assessed, limit) -> None:
    fracture = e["fracture_date"]
    e["assessment_date"] = assessed
    e["height_cm"] = round(rng.gauss(175 if male else 161, 7), 0 if rng.random() < 0.8 else 1)
    e["weight_kg"] = round(rng.gauss(80 if male else 66, 13), 0 if rng.random() < 0.7 else 1)
    e["height_cm"] = min(max(e["height_cm"], 130), 205)
    e["weight_kg"] = min(max(e["weight_kg"], 35), 160)
    e["previous_fracture"] = _pick(rng, {"Yes": 30, "No": 60, "Not known": 10})
    e["parental_hip_fracture"] = _pick(rng, {"Yes": 9, "No": 55, "Not known": 36})
    e["smoker"] = _pick(rng, {"Current": 12, "Ex": 30, "Never": 50, "Not known": 8})
    e["on_bone_therapy_at_fracture"] = _pick(rng, {"Yes": 14, "No": 81, "Not known": 5})
    if rng.random() < 0.7:
        e["frax_major_percent"] = round(rng.uniform(4, 45), 1)

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
        e["dxa_not_recommended_reason"] = _pick(
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

    falls_rate = profile.falls_rate * (0.75 if male else 1)
    if rng.random() < falls_rate:
        e["falls_assessed"] = "Yes"
        e["falls_referred"] = _pick(rng, {"Yes": 45, "No": 50, "Not known": 5})
    else:
        e["falls_assessed"] = _pick(rng, {"No": 90, "Not known": 10})
        e["falls_referred"] = _pick(rng, {"Yes": 15, "No": 70, "Not known": 15})

    treat_rate = profile.treat_rate * (0.75 if male else 1)
    if rng.random() < treat_rate:
        drugs = {_pick(rng, _DRUG_WEIGHTS)}
        if rng.random() < 0.02:  # e.g. an anabolic course followed by an antiresorptive
            drugs.add(_pick(rng, _DRUG_WEIGHTS))
        e["bone_therapy"] = _ordered(drugs, ds.DRUGS)
    else:
        e["bone_therapy"] = _pick(
            rng,
            {
                "Not appropriate": 30,
                "Informed decline": 20,
                "Referred for clinical opinion": 10,
                "Referred to GP to decide": 30,
                "Not known": 10,
            },
        )
    e["calcium_vitd"] = _pick(rng, {"Yes": 78, "No": 17, "Not known": 5})
    first_choice = e["bone_therapy"].split(";")[0]
    drug = first_choice if first_choice in ds.DRUGS else None

    # 12-16 week contact: answered once its window has passed or it took place.
    window16_end = fracture + timedelta(days=112)
    contact16 = fracture + timedelta(days=rng.randint(84, 126))
    if rng.random() < profile.followup16_rate and contact16 <= limit and contact16 >= assessed:
        e["followup16_done"] = "Yes"
        e["followup16_date"] = contact16
        stays = 0.8 * (0.85 if male else 1)
        if drug:
            e["therapy16"] = (
                drug
                if rng.random() < stays
                else _pick(
                    rng, {"Not started": 50, "Informed decline": 30, "No longer appropriate": 20}
                )
            )
        else:
            e["therapy16"] = _pick(
                rng, {"Not started": 70, "Referred for clinical opinion": 15, "Not known": 15}
            )
        e["strength_balance16"] = (
            "Yes"
            if rng.random() < profile.strength_rate
            else _pick(rng, {"No": 80, "Not known": 20})
        )
    elif window16_end < limit:
        e["followup16_done"] = _pick(rng, {"No": 85, "Not known": 15})

    # 12-month follow-up (48-56 weeks).
    window52_end = fracture + timedelta(days=392)
    contact52 = fracture + timedelta(days=rng.randint(336, 392))
    if rng.random() < profile.followup52_rate and contact52 <= limit and contact52 >= assessed:
        e["followup52_done"] = "Yes"
        e["followup52_date"] = contact52
        adherent = 0.65 * (0.8 if male else 1)
        started = e["therapy16"] in ds.DRUGS if e["therapy16"] else bool(drug)
        if started and rng.random() < adherent:
            e["therapy52"] = e["therapy16"] if e["therapy16"] in ds.DRUGS else drug
        else:
            e["therapy52"] = _pick(
                rng,
                {
                    "Not started": 40,
                    "No longer appropriate": 25,
                    "Informed decline": 25,
                    "Not known": 10,
                },
            )
        e["refracture"] = _pick(rng, {"No": 92, "Yes": 3, "Not known": 5})
    elif window52_end < limit:
        e["followup52_done"] = _pick(rng, {"No": 85, "Not known": 15})


def generate(
    rng: random.Random,
    services: Sequence[dict[str, Any]],
    start: date,
    end: date,
    count: int,
    today: date,
    death_rate: float = 0.05,
    refracture_rate: float = 0.03,
) -> Iterator[tuple[dict, list[dict]]]:
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
    weights = [p.weight for p in profiles]
    made = 0
    while made < count:
        batch = min(10_000, count - made)
        for fracture in _fracture_dates(rng, start, end, batch):
            if made >= count:
                break
            profile = rng.choices(profiles, weights=weights)[0]
            patient = _patient(rng, profile, fracture, next(numbers))
            limit = today
            if rng.random() < death_rate:  # died during the follow-up year or later
                death = fracture + timedelta(days=rng.randint(20, 900))
                if death <= today:
                    patient["date_of_death"] = death
                    limit = death
            episodes = [_episode(rng, profile, patient, fracture, limit)]
            made += 1
            # About 3% fracture again; the later fracture is a new, linked episode.
            second = fracture + timedelta(days=rng.randint(120, 900))
            if made < count and rng.random() < refracture_rate and second <= limit:
                first = episodes[0]
                if first["followup52_date"] is not None:
                    first["refracture"] = "Yes" if second <= first["followup52_date"] else "No"
                later = _episode(rng, profile, patient, second, limit)
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
            yield patient, episodes


# --- writing ----------------------------------------------------------------------------------

PATIENT_COLUMNS = ("service_id",) + ds.PATIENT_FIELDS
EPISODE_COLUMNS = ("service_id", "patient_id", "previous_episode_id") + ds.EPISODE_FIELDS


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, date) else value


def _created(values: dict, columns: Sequence[str]) -> dict:
    """The changes of a create audit event: every recorded value, old value none."""
    return {c: [None, _plain(values[c])] for c in columns if values.get(c) is not None}


@dataclass
class Written:
    patients: int = 0
    episodes: int = 0
    deleted: int = 0
    first_fracture: date | None = None
    last_fracture: date | None = None


def write(
    actor: Actor,
    session,
    rows: Iterable[tuple[dict, list[dict]]],
    *,
    total: int,
    progress: Callable[[int, str], Any] | None = None,
    deleted_by: dict[int, int] | None = None,
    chunk: int = 5_000,
    audited: bool = True,
    now: datetime | None = None,
    after_chunk: Callable[[], Any] | None = None,
) -> Written:
    """Bulk-insert generated rows with SQLAlchemy Core, in chunks, with a `create` audit event per
    patient and episode (and a `delete` one per soft-deleted episode, by the service's user in
    `deleted_by`). Writes in the session's transaction and never commits itself; `after_chunk` is
    called after each chunk."""
    now = now or clock.utcnow()
    next_patient = (session.scalar(select(func.max(Patient.id))) or 0) + 1
    next_episode = (session.scalar(select(func.max(Episode.id))) or 0) + 1
    written = Written()
    patients: list[dict] = []
    episodes: list[dict] = []
    events: list[dict] = []

    def flush() -> None:
        if patients:
            session.execute(insert(Patient.__table__), patients)
        if episodes:
            session.execute(insert(Episode.__table__), episodes)
        if events:
            audit.record_many(events)
        if bar is not None:
            bar.update(len(episodes))
        if after_chunk is not None:  # e.g. a commit, so a huge load never sits in one transaction
            after_chunk()
        patients.clear()
        episodes.clear()
        events.clear()

    def event(action, entity_type, entity_id, service_id, changes, detail=None, by=actor):
        if audited:
            events.append(
                audit.event_row(
                    by,
                    action,
                    at=now,
                    service_id=service_id,
                    entity_type=entity_type,
                    entity_id=entity_id,
                    changes=changes,
                    detail=detail,
                )
            )

    context = progress(total, "Writing episodes") if progress else None
    bar = context.__enter__() if context is not None else None
    try:
        for patient, patient_episodes in rows:
            patient_id = next_patient
            next_patient += 1
            patients.append(
                {"id": patient_id, "version": 1, "created_at": now, "updated_at": now}
                | {c: patient[c] for c in PATIENT_COLUMNS}
            )
            event(
                "create",
                "patient",
                patient_id,
                patient["service_id"],
                _created(patient, PATIENT_COLUMNS),
            )
            ids = []
            for episode in patient_episodes:
                episode_id = next_episode
                next_episode += 1
                ids.append(episode_id)
                previous = episode.get("previous_index")
                values = {c: episode.get(c) for c in EPISODE_COLUMNS} | {
                    "patient_id": patient_id,
                    "previous_episode_id": ids[previous] if previous is not None else None,
                }
                reason = episode.get("deleted_reason")
                deleter = (deleted_by or {}).get(values["service_id"])
                episodes.append(
                    {
                        "id": episode_id,
                        "version": 1,
                        "created_at": now,
                        "updated_at": now,
                        "created_by_id": None,
                        "deleted_at": now if reason else None,
                        "deleted_by_id": deleter if reason else None,
                        "deleted_reason": reason,
                    }
                    | values
                )
                event(
                    "create",
                    "episode",
                    episode_id,
                    values["service_id"],
                    _created(values, EPISODE_COLUMNS),
                )
                if reason:
                    event(
                        "delete",
                        "episode",
                        episode_id,
                        values["service_id"],
                        {"deleted_reason": [None, reason]},
                        detail=reason,
                        by=Actor(user_id=deleter, operator=actor.operator),
                    )
                    written.deleted += 1
                fracture = episode["fracture_date"]
                if written.first_fracture is None or fracture < written.first_fracture:
                    written.first_fracture = fracture
                if written.last_fracture is None or fracture > written.last_fracture:
                    written.last_fracture = fracture
            written.patients += 1
            written.episodes += len(patient_episodes)
            if len(episodes) >= chunk:
                flush()
        flush()
    finally:
        if context is not None:
            context.__exit__(None, None, None)
    _advance_sequences(session)
    return written


def _advance_sequences(session) -> None:
    """PostgreSQL's id sequences do not see explicit ids: move them past the rows written."""
    if session.get_bind().dialect.name != "postgresql":
        return
    for table in ("patients", "episodes"):
        session.execute(
            text(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"(SELECT COALESCE(MAX(id), 0) + 1 FROM {table}), false)"
            )
        )
