"""The synthetic demo behind `flask demo` (spec/cli.md): six services across England, Wales and
Northern Ireland, users of every role, and a few thousand realistic episodes over three and a
half years ending today. Deterministic: the same `today` gives the same rows."""

from __future__ import annotations

import random
from datetime import date, timedelta

from sqlalchemy import exists, select

from portal import clock
from portal.accounts.users import create_user, hash_password, password_problem
from portal.admin.service_directory import add_service
from portal.audit import events as audit
from portal.audit.actor import Actor
from portal.extensions import db
from portal.models import Patient, Service, User
from portal.operations import synthetic
from portal.operations.progress import Progress
from portal.operations.synthetic.contacts import add_day_of_work

# Three and a half years of fractures, so the oldest have finished their 12-month follow-up.
YEARS = 3
EXTRA_DAYS = 182
EMAIL_DOMAIN = "demo.fls.nhs.uk"

# code, name, nation, expected caseload, quality (0 struggling .. 1 excellent). Caseloads are
# at the smaller end of the audit's 400-4,000 so the demo stays a few thousand episodes while
# each service's identification rate (KPI 2) stays realistic.
SERVICES = (
    ("LTH", "Leeds Teaching Hospitals Fracture Liaison Service", "England", 700, 0.90),
    ("NBT", "North Bristol Fracture Liaison Service", "England", 550, 0.55),
    ("ULH", "United Lincolnshire Fracture Liaison Service", "England", 500, 0.15),
    ("CAV", "Cardiff and Vale Fracture Liaison Service", "Wales", 450, 0.75),
    ("BCU", "Betsi Cadwaladr Fracture Liaison Service", "Wales", 600, 0.30),
    ("BEL", "Belfast Fracture Liaison Service", "Northern Ireland", 420, 0.60),
)
# One password per role, so the printed list stays short; each passes the password rules.
PASSWORDS = {
    "admin": "Portal-oversight-2026",
    "lead": "Service-lead-bones-47",
    "clinician": "Fracture-nurse-rounds-83",
}
# A clinician who works for two services, to show switching between them.
SHARED_CLINICIAN = ("sam.okafor", "Sam Okafor", ("BCU", "CAV"))
LEADS = {
    "LTH": "Priya Raman",
    "NBT": "Tom Hughes",
    "ULH": "Grace Bennett",
    "CAV": "Rhys Evans",
    "BCU": "Eleri Jones",
    "BEL": "Ciara McCann",
}
# About 8% die within a year and 3% break another bone within a year (synthetic.generate spreads
# deaths over 20-900 days and second fractures over 120-900 days).
DEATH_RATE = 0.2
REFRACTURE_RATE = 0.1
# Hip fractures a year (NHFD) as a share of the expected caseload / 5, by service, for the
# missed-patients estimate; BEL's are not recorded, so the benchmarks show "not yet known".
HIP_FRACTURE_SHARE = {"LTH": 1.05, "NBT": 1.2, "ULH": 1.3, "CAV": 0.95, "BCU": 1.1}
CLINICIANS = {
    "LTH": "Aisha Patel",
    "NBT": "Ben Carter",
    "ULH": "Hannah Shaw",
    "CAV": "Megan Price",
    "BCU": "Dylan Morgan",
    "BEL": "Niamh O'Neill",
}


def database_has_data() -> bool:
    """True when any service, user or patient exists: the demo only fills an empty database."""
    return bool(
        db.session.scalar(select(exists().select_from(Service)))
        or db.session.scalar(select(exists().select_from(User)))
        or db.session.scalar(select(exists().select_from(Patient)))
    )


def _email(local: str) -> str:
    return f"{local}@{EMAIL_DOMAIN}"


def _add_users(actor: Actor, services: dict[str, Service]) -> list[tuple[User, str]]:
    """Admin, a lead and a clinician per service, and a clinician of two services."""
    hashes = {role: hash_password(password) for role, password in PASSWORDS.items()}
    people: list[tuple[str, str, str, list[Service]]] = [("admin", "Alex Morgan", "admin", [])]
    for code, name in LEADS.items():
        people.append((f"lead.{code.lower()}", name, "lead", [services[code]]))
    for code, name in CLINICIANS.items():
        people.append((f"nurse.{code.lower()}", name, "clinician", [services[code]]))
    local, name, codes = SHARED_CLINICIAN
    people.append((local, name, "clinician", [services[c] for c in codes]))

    users = []
    for local, name, role, member_of in people:
        email = _email(local)
        problem = password_problem(PASSWORDS[role], email)
        if problem:  # a programming error: the demo must never hand out a refused password
            raise ValueError(f"demo password for {email}: {problem}")
        # Created without a password, then given the role's hash: argon2 runs once per role.
        user = create_user(actor, email, name, role, member_of, password=None)
        user.password_hash = hashes[role]
        users.append((user, PASSWORDS[role]))
    return users


def fill(actor: Actor, today: date | None = None, progress: Progress | None = None) -> str:
    """Add the demo to an empty database (flushes; the caller commits) and return the text the
    CLI prints: what was added and how each demo user signs in."""
    today = today or clock.today()
    rng = random.Random(f"fls-portal-demo-{today.isoformat()}")

    services: dict[str, Service] = {}
    for code, name, nation, caseload, _quality in SERVICES:
        service = add_service(actor, code, name, nation, caseload)
        service.data_version = 1  # the KPI cache keys on it: the demo's data is version 1
        services[code] = service
    users = _add_users(actor, services)
    leads = {u.services[0].id: u.id for u, _ in users if u.role == "lead"}

    start = synthetic.years_before(today, YEARS) - timedelta(days=EXTRA_DAYS)
    per_year = sum(synthetic.identified_per_year(s[3], s[4]) for s in SERVICES)
    episodes = round(per_year * (today - start).days / 365.25)
    rows = synthetic.generate(
        rng,
        [
            {
                "id": services[code].id,
                "code": code,
                "nation": nation,
                "expected_caseload": caseload,
                "quality": quality,
            }
            for code, _name, nation, caseload, quality in SERVICES
        ],
        start,
        today,
        episodes,
        today,
        # More deaths and second fractures than the benchmark data set, so that the outcome
        # pages (refracture at 12 and 24 months, mortality) show realistic figures.
        death_rate=DEATH_RATE,
        refracture_rate=REFRACTURE_RATE,
    )
    written = synthetic.write(
        actor, db.session, rows, total=episodes, progress=progress, deleted_by=leads
    )
    summary = (
        f"{len(services)} services, {len(users)} users, {written.patients} patients, "
        f"{written.episodes} episodes ({written.deleted} deleted) with fracture dates from "
        f"{written.first_fracture} to {written.last_fracture}"
    )
    _add_hip_fractures(actor, services, today)
    nurses = {
        u.services[0].code: u for u, _ in users if u.role == "clinician" and len(u.services) == 1
    }
    attempts, letters = add_day_of_work(
        random.Random(f"fls-portal-day-{today}"), services, nurses, today
    )
    summary += f", {attempts} contact attempts and {letters} letters"
    audit.record(actor, "demo_loaded", detail=f"{summary}; today {today.isoformat()}")
    db.session.flush()
    return _sign_in_text(summary, users)


def _add_hip_fractures(actor: Actor, services: dict[str, Service], today: date) -> None:
    """Each demo service's hip fractures for the years of the demo (but BEL's)."""
    from portal.kpi_pages.missed_patients import record_hip_fractures

    for code, share in HIP_FRACTURE_SHARE.items():
        service = services[code]
        for year in range(today.year - YEARS, today.year + 1):
            record_hip_fractures(actor, service, year, round(service.expected_caseload / 5 * share))


def _sign_in_text(summary: str, users: list[tuple[User, str]]) -> str:
    lines = [f"Demo added: {summary}.", "", "Sign in at /auth/sign-in with:"]
    width = max(len(u.email) for u, _ in users)
    for user, password in users:
        where = ", ".join(s.code for s in user.services) or "no service (administration)"
        lines.append(
            f"  {user.email:<{width}}  {user.role:<9}  password {password}  services {where}"
        )
    lines.append("")
    lines.append(
        "Services: " + "; ".join(f"{code} {name} ({nation})" for code, name, nation, *_ in SERVICES)
    )
    return "\n".join(lines)
