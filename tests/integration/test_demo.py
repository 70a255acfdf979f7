"""`flask demo` (spec/cli.md) and the synthetic generator: an empty database gets a realistic,
deterministic demo whose every record keeps the rules of spec/dataset.md."""

from __future__ import annotations

import hashlib
import random
import re
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from kpis import dataset as ds
from portal.journey import rules as dataset_rules
from portal.models import AuditEvent, Base, Episode, Patient, Service, TreatmentCourse, User
from portal.operations import synthetic

TODAY = date(2026, 11, 27)
SIGN_IN_LINE = re.compile(
    r"^\s+(?P<email>\S+@\S+)\s+(?P<role>admin|lead|clinician)\s+password (?P<password>\S+)"
    r"\s+services (?P<services>.+)$",
    re.M,
)


def _run_demo(runner, today: str = "2026-11-27"):
    return runner.invoke(args=["demo", "--today", today])


def _rows(db, model) -> list[dict]:
    table = model.__table__
    return [dict(row._mapping) for row in db.session.execute(select(table).order_by(table.c.id))]


# --- the dataset rules, checked independently of the generator ---------------------------------


def _whole_years(born: date, on: date) -> int:
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))


def _nhs_number_valid(number: str) -> bool:
    if not re.fullmatch(r"\d{10}", number) or len(set(number)) == 1:
        return False
    total = sum(int(d) * w for d, w in zip(number[:9], range(10, 1, -1), strict=True))
    check = 11 - total % 11
    check = 0 if check == 11 else check
    return check != 10 and check == int(number[9])


def _rule_problems(patient: dict, episode: dict, today: date) -> list[str]:
    """Every rule of dataset.md a stored patient/episode pair could break."""
    problems = []
    p, e = patient, episode
    if not _nhs_number_valid(p["nhs_number"]):
        problems.append(f"nhs_number {p['nhs_number']}")
    for field, allowed in ds.CHOICES.items():
        value = p.get(field, e.get(field))
        if value is not None and value not in allowed:
            problems.append(f"{field} {value!r}")
    if p["sex"] is None or p["date_of_birth"] is None:
        problems.append("patient required field missing")
    age = _whole_years(p["date_of_birth"], e["fracture_date"])
    if not 50 <= age <= 115:
        problems.append(f"age {age}")
    if p["postcode"] is not None and not re.fullmatch(
        r"[A-Z]{1,2}\d{1,2} \d[A-Z]{2}", p["postcode"]
    ):
        problems.append(f"postcode {p['postcode']}")
    fracture = e["fracture_date"]
    if not date(2016, 1, 1) <= fracture <= today:
        problems.append(f"fracture_date {fracture}")
    dates = {f: e[f] for f in ds.DATE_FIELDS if f in e and e[f] is not None}
    for field, value in dates.items():
        if value > today:
            problems.append(f"{field} in the future")
        if value < fracture:
            problems.append(f"{field} before the fracture")
        if p["date_of_death"] is not None and value > p["date_of_death"]:
            problems.append(f"{field} after death")
    if p["date_of_death"] is not None and p["date_of_death"] < p["date_of_birth"]:
        problems.append("death before birth")
    sites = (e["fracture_sites"] or "").split(";")
    if not e["fracture_sites"] or len(sites) > 3 or len(set(sites)) != len(sites):
        problems.append(f"fracture_sites {e['fracture_sites']!r}")
    elif any(s not in ds.FRACTURE_SITES for s in sites):
        problems.append(f"fracture_sites {e['fracture_sites']!r}")
    for field, (low, high, decimals) in ds.NUMBER_FIELDS.items():
        value = e[field]
        if value is not None and not (low <= value <= high and round(value, decimals) == value):
            problems.append(f"{field} {value}")
    reason_needed = e["dxa_status"] == "Not recommended"
    if reason_needed != (e["dxa_not_recommended_reason"] is not None):
        problems.append("dxa_not_recommended_reason")
    if e["dxa_not_recommended_reason"] not in (None, *ds.DXA_NOT_RECOMMENDED_REASONS):
        problems.append("dxa_not_recommended_reason value")
    if e["dxa_date"] is not None and e["dxa_status"] != "Recommended":
        problems.append("dxa_date without Recommended")
    if e["t_score"] is not None and e["dxa_date"] is None:
        problems.append("t_score without dxa_date")
    for stage in ("16", "52"):
        if (e[f"followup{stage}_done"] == "Yes") != (e[f"followup{stage}_date"] is not None):
            problems.append(f"followup{stage}_date")
    if (
        e["followup16_date"]
        and e["followup52_date"]
        and e["followup52_date"] <= e["followup16_date"]
    ):
        problems.append("followup52_date not after followup16_date")
    if e["bone_therapy"] is not None:
        values = e["bone_therapy"].split(";")
        drugs = [v for v in values if v in ds.DRUGS]
        outcomes = [v for v in values if v in ds.THERAPY_OUTCOMES]
        if len(drugs) + len(outcomes) != len(values) or len(set(values)) != len(values):
            problems.append(f"bone_therapy {e['bone_therapy']!r}")
        if outcomes and len(values) != 1:
            problems.append(f"bone_therapy mixes {e['bone_therapy']!r}")
    return problems


def _shared_rule_problems(patient: dict, episode: dict, today: date) -> list[str]:
    """The portal's own validation layer: each value survives export and re-parsing unchanged
    (allowed values, ranges, NHS number, postcode), and the record passes every cross-field rule."""
    problems = []
    for fields, values in ((ds.PATIENT_FIELDS, patient), (ds.EPISODE_FIELDS, episode)):
        for field in fields:
            value = values.get(field)
            text = dataset_rules.format_value(field, value)
            try:
                parsed = dataset_rules.parse_value(field, text)
            except dataset_rules.ValueProblem as problem:
                problems.append(f"{field}: {problem}")
                continue
            if parsed != value:
                problems.append(f"{field}: {value!r} comes back as {parsed!r}")
    problems += [
        f"{f}: {m}" for f, m in dataset_rules.check_record(patient, episode, today).items()
    ]
    return problems


def _assert_rows_keep_the_rules(patients: dict, episodes: list[dict], today: date) -> None:
    broken = {}
    for episode in episodes:
        patient = patients[episode["patient_id"]]
        problems = _rule_problems(patient, episode, today)
        problems += _shared_rule_problems(patient, episode, today)
        if problems:
            broken[episode["id"]] = problems
    assert not broken, list(broken.items())[:5]


# --- the command --------------------------------------------------------------------------------


def test_demo_fills_an_empty_database_and_prints_how_to_sign_in(app, db, runner):
    result = _run_demo(runner)
    assert result.exit_code == 0, result.output
    accounts = [m.groupdict() for m in SIGN_IN_LINE.finditer(result.output)]
    assert {a["role"] for a in accounts} == {"admin", "lead", "clinician"}

    services = db.session.scalars(select(Service)).all()
    assert len(services) >= 4
    assert {s.nation for s in services} == set(ds.NATIONS)
    assert all(400 <= s.expected_caseload <= 4000 and s.data_version > 0 for s in services)

    users = {u.email: u for u in db.session.scalars(select(User))}
    assert set(users) == {a["email"] for a in accounts}
    for account in accounts:
        user = users[account["email"]]
        assert user.role == account["role"]
        codes = [s.code for s in user.services]
        if user.role == "admin":
            assert codes == []
        else:
            assert codes and ", ".join(codes) == account["services"]
    assert any(len(u.services) >= 2 for u in users.values() if u.role == "clinician")

    # Everyone signs in with the printed password. Each sign-in gets its own client and app
    # context, so no signed-in user or CSRF token cached in `g` carries over from the last one.
    for account in accounts:
        with app.app_context():
            client = app.test_client()
            response = client.post(
                "/auth/sign-in",
                data={"email": account["email"], "password": account["password"]},
            )
            assert response.status_code == 302, (account["email"], response.status_code)
            assert "/auth/sign-in" not in response.headers["Location"]
            home = client.get("/")
            if account["role"] == "admin":
                # An admin enrols a second factor at first sign-in (security.md).
                assert home.status_code == 302
                assert home.headers["Location"].endswith("/auth/two-factor")
            else:
                assert home.status_code == 200
    signed_in = db.session.execute(
        select(User.email, func.count())
        .join(AuditEvent, AuditEvent.user_id == User.id)
        .where(AuditEvent.action == "sign_in")
        .group_by(User.email)
    ).all()
    assert dict(signed_in) == dict.fromkeys(users, 1)
    assert not db.session.scalar(
        select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "sign_in_failed")
    )


def _assert_people_are_invented(db, patients: dict) -> None:
    """Issue 18: names and numbers that cannot be mistaken for real ones, some contact attempts
    and letters."""
    import re

    from portal.models import ContactAttempt, Letter

    people = list(patients.values())
    assert all(p["nhs_number"].startswith("999") for p in people)
    assert all(p["given_name"] and p["family_name"] for p in people)
    assert all(p["hospital_number"].startswith("DEMO") for p in people)
    assert len({(p["service_id"], p["hospital_number"]) for p in people}) == len(people)
    drama = re.compile(r"^(01632 960\d{3}|07700 900\d{3})$")
    assert all(drama.match(n) for p in people for n in p["phone"].split("; "))
    assert all(p["gp_practice_code"].startswith("Z99") for p in people)
    attempts = db.session.query(ContactAttempt).count()
    finals = db.session.query(Letter).filter_by(state="final").count()
    assert attempts >= 20 and finals >= 10, (attempts, finals)


def test_demo_records_are_realistic_audited_and_keep_the_dataset_rules(db, runner):
    assert _run_demo(runner).exit_code == 0
    patients = {p["id"]: p for p in _rows(db, Patient)}
    episodes = _rows(db, Episode)
    assert len(episodes) >= 3000
    first = min(e["fracture_date"] for e in episodes)
    last = max(e["fracture_date"] for e in episodes)
    assert last <= TODAY
    assert (last - first).days >= 3 * 365
    _assert_rows_keep_the_rules(patients, episodes, TODAY)
    _assert_people_are_invented(db, patients)

    # The spread reference.md describes.
    hips = sum("Hip" in e["fracture_sites"] for e in episodes) / len(episodes)
    spines = sum("Spine" in e["fracture_sites"] for e in episodes) / len(episodes)
    assert 0.15 <= hips <= 0.25 and 0.05 <= spines <= 0.20
    assessed = [e for e in episodes if e["assessment_date"] is not None]

    def falls_rate(sex):
        group = [e for e in assessed if patients[e["patient_id"]]["sex"] == sex]
        return sum(e["falls_assessed"] == "Yes" for e in group) / len(group)

    assert falls_rate("Male") < falls_rate("Female")
    by_service: dict[int, list] = {}
    for e in episodes:
        by_service.setdefault(e["service_id"], []).append(e)
    within_90 = sorted(
        sum(
            e["assessment_date"] is not None
            and (e["assessment_date"] - e["fracture_date"]).days <= 90
            for e in group
        )
        / len(group)
        for group in by_service.values()
    )
    assert within_90[-1] - within_90[0] > 0.3  # some services good, some poor
    recent = [e for e in episodes if (TODAY - e["fracture_date"]).days < 336]
    assert all(e["followup52_done"] is None for e in recent)
    assert any(p["date_of_death"] is not None for p in patients.values())
    linked = [e for e in episodes if e["previous_episode_id"] is not None]
    assert linked
    ids = {e["id"]: e for e in episodes}
    for e in linked:
        earlier = ids[e["previous_episode_id"]]
        assert earlier["patient_id"] == e["patient_id"]
        assert earlier["fracture_date"] < e["fracture_date"]
    deleted = [e for e in episodes if e["deleted_at"] is not None]
    assert deleted and all(e["deleted_reason"] and e["deleted_by_id"] for e in deleted)
    assert any(e[f] is None for e in assessed for f in ("smoker", "previous_fracture"))

    # Audited: one demo_loaded event and a create event with the values of every record.
    events = db.session.execute(
        select(AuditEvent.action, AuditEvent.entity_type, func.count()).group_by(
            AuditEvent.action, AuditEvent.entity_type
        )
    ).all()
    counts = {(action, entity): n for action, entity, n in events}
    assert counts[("demo_loaded", None)] == 1
    assert counts[("create", "patient")] == len(patients)
    assert counts[("create", "episode")] == len(episodes)
    assert counts[("delete", "episode")] == len(deleted)
    sample = episodes[0]
    event = db.session.scalar(
        select(AuditEvent).where(
            AuditEvent.entity_type == "episode", AuditEvent.entity_id == sample["id"]
        )
    )
    assert event.changes["fracture_date"] == [None, sample["fracture_date"].isoformat()]
    assert event.changes["fracture_sites"] == [None, sample["fracture_sites"]]


def _digest(db) -> str:
    """Every demo record, keyed by natural keys (ids of services and users may differ)."""
    codes = {s.id: s.code for s in db.session.scalars(select(Service))}
    emails = {u.id: u.email for u in db.session.scalars(select(User))}
    patients = {p["id"]: p for p in _rows(db, Patient)}
    episodes = {e["id"]: e for e in _rows(db, Episode)}
    skip = {"id", "created_at", "updated_at", "deleted_at", "service_id", "patient_id"}
    lines = []
    for p in patients.values():
        lines.append(repr([codes[p["service_id"]]] + [p[k] for k in sorted(p) if k not in skip]))
    for e in episodes.values():
        previous = episodes.get(e["previous_episode_id"])
        lines.append(
            repr(
                [
                    codes[e["service_id"]],
                    patients[e["patient_id"]]["nhs_number"],
                    previous["fracture_date"] if previous else None,
                    emails.get(e["deleted_by_id"]),
                    e["deleted_at"] is not None,
                ]
                + [
                    e[k]
                    for k in sorted(e)
                    if k not in skip | {"deleted_by_id", "previous_episode_id"}
                ]
            )
        )
    for s in db.session.scalars(select(Service).order_by(Service.code)):
        lines.append(repr([s.code, s.name, s.nation, s.expected_caseload]))
    for u in db.session.scalars(select(User).order_by(User.email)):
        lines.append(repr([u.email, u.role, u.display_name, [s.code for s in u.services]]))
    return hashlib.sha256("\n".join(sorted(lines)).encode()).hexdigest()


def _empty(db) -> None:
    db.session.remove()
    with db.engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(table.delete())


def test_demo_gathers_postgresql_statistics_of_what_it_wrote(db, runner):
    """The planner knows the demo's thousands of rows at once (portal/operations/statistics.py),
    not a minute later when autovacuum comes by."""
    from sqlalchemy import text

    if db.engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL's planner statistics: this database is SQLite")
    assert _run_demo(runner).exit_code == 0
    db.session.commit()
    stored = db.session.scalar(text("SELECT count(*) FROM patients"))
    estimated = db.session.scalar(text("SELECT reltuples FROM pg_class WHERE relname = 'patients'"))
    assert stored > 1000
    assert estimated == stored


def test_demo_is_deterministic_for_a_given_today(db, runner):
    first = _run_demo(runner)
    digest = _digest(db)
    _empty(db)
    second = _run_demo(runner)
    assert second.exit_code == 0
    assert _digest(db) == digest
    assert second.output == first.output
    _empty(db)
    assert _run_demo(runner, "2026-11-26").exit_code == 0
    assert _digest(db) != digest


def test_second_run_says_the_database_holds_data_and_adds_nothing(db, runner):
    assert _run_demo(runner).exit_code == 0
    before = [db.session.scalar(select(func.count()).select_from(m)) for m in (Episode, AuditEvent)]
    again = _run_demo(runner)
    assert again.exit_code == 0
    assert "already holds data" in again.output
    after = [db.session.scalar(select(func.count()).select_from(m)) for m in (Episode, AuditEvent)]
    assert after == before


def test_demo_refuses_on_any_existing_service(db, runner, make_service):
    make_service("ZZZ")
    result = _run_demo(runner)
    assert result.exit_code == 0
    assert "already holds data" in result.output
    assert db.session.scalar(select(func.count()).select_from(Episode)) == 0


def test_demo_refuses_a_bad_today(runner):
    result = _run_demo(runner, "2026-13-01")
    assert result.exit_code == 1
    assert "not a date" in result.output


# --- the generator on its own ------------------------------------------------------------------


def test_generator_keeps_the_rules_on_a_leap_day_and_clips_to_2016():
    today = date(2024, 2, 29)
    services = [
        {"id": 1, "code": "AAA", "nation": "England", "expected_caseload": 3000},
        {"id": 2, "code": "BBB", "nation": "Northern Ireland", "expected_caseload": 500},
    ]
    rows = list(
        synthetic.generate(random.Random(7), services, date(2014, 1, 1), today, 5000, today)
    )
    patients, episodes = {}, []
    for number, (patient, patient_episodes) in enumerate(rows):
        patients[number] = patient
        for index, episode in enumerate(patient_episodes):
            episodes.append(episode | {"patient_id": number, "id": (number, index)})
    assert len(episodes) == 5000
    assert min(e["fracture_date"] for e in episodes) >= date(2016, 1, 1)
    _assert_rows_keep_the_rules(patients, episodes, today)
    numbers = [p["nhs_number"] for p in patients.values()]
    assert len(set(numbers)) == len(numbers)
    assert all(n.startswith("999") for n in numbers)
    assert {p["service_id"] for p in patients.values()} == {1, 2}


def test_generator_is_repeatable():
    services = [{"id": 1, "code": "AAA", "nation": "Wales", "expected_caseload": 900}]
    day = date(2025, 6, 30)

    def run():
        return list(
            synthetic.generate(random.Random(3), services, day - timedelta(days=900), day, 500, day)
        )

    assert run() == run()


# --- the benchmark dataset script --------------------------------------------------------------


def _make_dataset_module():
    import importlib.util

    path = Path(__file__).resolve().parents[2] / "bench" / "make_dataset.py"
    spec = importlib.util.spec_from_file_location("make_dataset", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_make_dataset_fills_the_database_once(app, db, monkeypatch, tmp_path, capsys):
    make_dataset = _make_dataset_module()
    monkeypatch.setenv("DATABASE_URL", app.config["SQLALCHEMY_DATABASE_URI"])
    monkeypatch.setenv("PORTAL_INSTANCE_PATH", str(tmp_path))
    args = ["--episodes", "1500", "--years", "4", "--services", "12", "--today", "2026-11-27"]
    assert make_dataset.main(args) == 0
    assert "1500 episodes" in capsys.readouterr().out
    db.session.remove()
    services = db.session.scalars(select(Service)).all()
    assert len(services) == 12 and {s.nation for s in services} == set(ds.NATIONS)
    assert len({s.code for s in services}) == 12
    patients = {p["id"]: p for p in _rows(db, Patient)}
    episodes = _rows(db, Episode)
    assert len(episodes) == 1500
    assert min(e["fracture_date"] for e in episodes) > date(2022, 11, 27)
    _assert_rows_keep_the_rules(patients, episodes, TODAY)
    creates = db.session.scalar(
        select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "create")
    )
    # Each treatment course of the synthetic plans (issue 19) is created and audited too.
    courses = db.session.scalar(select(func.count()).select_from(TreatmentCourse))
    assert courses > 0
    assert creates == len(patients) + len(episodes) + len(services) + courses

    assert make_dataset.main(args) == 1  # never adds to a database that holds data
    assert "already holds data" in capsys.readouterr().err
    assert db.session.scalar(select(func.count()).select_from(Episode)) == 1500
