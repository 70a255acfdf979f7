"""Properties of the KPI figures on generated episodes (hypothesis), and the SQL engine against a
plain Python reading of spec/kpis.md, episode by episode: two independent implementations of the
same words must agree on every figure."""

from __future__ import annotations

from datetime import date, timedelta
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kpis import dataset, engine
from kpis.periods import Period

PERIOD = Period.parse("2024-01", "2024-12")

maybe_missing = st.one_of(st.none(), st.sampled_from(dataset.YES_NO_UNKNOWN))
bone_therapy = st.one_of(
    st.none(),
    st.sampled_from(dataset.THERAPY_OUTCOMES),
    st.lists(st.sampled_from(dataset.DRUGS), min_size=1, max_size=3, unique=True).map(
        lambda drugs: ";".join(d for d in dataset.DRUGS if d in drugs)
    ),
)
sites = st.lists(st.sampled_from(dataset.FRACTURE_SITES), min_size=1, max_size=3, unique=True).map(
    lambda chosen: ";".join(s for s in dataset.FRACTURE_SITES if s in chosen)
)
episode = st.fixed_dictionaries(
    {
        "service": st.integers(0, 2),
        "day": st.integers(0, 365),
        "fracture_sites": sites,
        "bone_therapy": bone_therapy,
        "therapy16": st.one_of(st.none(), st.sampled_from(dataset.FOLLOWUP_THERAPY)),
        "therapy52": st.one_of(st.none(), st.sampled_from(dataset.FOLLOWUP_THERAPY)),
        "followup16_done": maybe_missing,
        "followup16_day": st.integers(0, 200),
        "strength_balance16": maybe_missing,
        "followup52_done": maybe_missing,
        "falls_assessed": maybe_missing,
        "falls_referred": maybe_missing,
        "assessment_day": st.one_of(st.none(), st.integers(0, 150)),
        "dxa_status": st.one_of(st.none(), st.sampled_from(dataset.DXA_STATUS)),
        "dxa_day": st.one_of(st.none(), st.integers(0, 150)),
        "death_day": st.one_of(st.none(), st.integers(0, 500)),
        "postcode": st.sampled_from([None, "LS1 4AB"]),
        "smoker": st.one_of(st.none(), st.sampled_from(dataset.SMOKER)),
        "deleted": st.sampled_from([False, False, False, True]),
    }
)
as_of = st.dates(min_value=date(2024, 2, 1), max_value=date(2026, 3, 1))
SETTINGS = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _store(db, add_episode, services, specs):
    from portal.models import Episode, Patient

    db.session.query(Episode).delete()
    db.session.query(Patient).delete()
    for spec in specs:
        spec = dict(spec)
        service = services[spec.pop("service")]
        fracture_date = date(2024, 1, 1) + timedelta(days=spec.pop("day"))
        if spec["dxa_status"] != "Recommended":
            spec["dxa_day"] = None
        if spec["followup16_done"] != "Yes":
            spec["followup16_day"] = None
        add_episode(service, fracture_date, commit=False, **spec)
    db.session.commit()


@pytest.fixture
def services(make_service):
    """Three services, made once per test (hypothesis runs every example on them)."""
    return [
        make_service("AAA", expected_caseload=600),
        make_service("BBB", expected_caseload=90),
        make_service("CCC", expected_caseload=1500),
    ]


@given(specs=st.lists(episode, max_size=25), day=as_of)
@SETTINGS
def test_numerator_never_above_denominator_and_national_pools_services(
    db, services, add_episode, specs, day
):
    _store(db, add_episode, services, specs)
    with db.engine.connect() as conn:
        report = engine.report(conn, PERIOD, day)
    for row in [*report.rows, report.national]:
        for figure in row.figures:
            if figure.kpi.number != 2:
                assert 0 <= figure.numerator <= figure.denominator
    national = report.national.figures
    for kpi in range(3, 12):
        assert national[kpi - 1].numerator == sum(r.figures[kpi - 1].numerator for r in report.rows)
        assert national[kpi - 1].denominator == sum(
            r.figures[kpi - 1].denominator for r in report.rows
        )
    assert national[1].numerator == sum(r.figures[1].numerator for r in report.rows)
    assert national[1].denominator == sum(r.figures[1].denominator for r in report.rows)
    assert national[0].numerator == sum(r.figures[0].band == "green" for r in report.rows)
    assert national[0].denominator == sum(r.figures[0].denominator > 0 for r in report.rows)
    assert sum(r.episodes for r in report.rows) == sum(not s["deleted"] for s in specs)


@given(specs=st.lists(episode, max_size=20), extra=episode, day=as_of)
@SETTINGS
def test_adding_an_episode_to_one_service_changes_no_other(
    db, services, add_episode, specs, extra, day
):
    _store(db, add_episode, services, specs)
    with db.engine.connect() as conn:
        before = engine.report(conn, PERIOD, day)
    _store(db, add_episode, services, [*specs, extra])
    with db.engine.connect() as conn:
        after = engine.report(conn, PERIOD, day)
    changed = services[extra["service"]].id
    for service in services:
        if service.id == changed:
            continue
        old, new = before.row_for(service.id), after.row_for(service.id)
        assert (old and old.figures) == (new and new.figures)
    old = before.row_for(changed)
    new = after.row_for(changed)
    if extra["deleted"]:
        # A deleted episode counts nowhere: nothing changes at all.
        assert (old and old.figures) == (new and new.figures)
    else:
        assert new.episodes == (old.episodes if old else 0) + 1


# --- the reference: spec/kpis.md read episode by episode ---------------------------------------


def _empty(value) -> bool:
    return value is None or value == ""


def reference(rows, service_caseloads, period, day):
    """{service_id: [(numerator, denominator)] * 11} and the national list, from plain rows."""
    by_service: dict[int, list] = {}
    for row in rows:
        if row["deleted_at"] is None and period.start <= row["fracture_date"] <= period.end:
            by_service.setdefault(row["service_id"], []).append(row)

    def figures(cohort):
        def d(name):
            return None if row[name] is None else (row[name] - row["fracture_date"]).days

        tallies = [[0, 0] for _ in range(11)]
        counted = dict.fromkeys(dataset.AUDITED_FIELDS, 0)
        missing = dict.fromkeys(dataset.AUDITED_FIELDS, 0)
        for row in cohort:
            fd = row["fracture_date"]
            due90 = fd + timedelta(days=90) <= day
            due16 = fd + timedelta(days=112) <= day
            due52 = fd + timedelta(days=392) <= day
            death = row["date_of_death"]
            alive16 = death is None or not death < fd + timedelta(days=112)
            alive52 = death is None or not death < fd + timedelta(days=392)
            sites = (row["fracture_sites"] or "").split(";")
            therapy = row["bone_therapy"]
            aom = not _empty(therapy) and therapy not in dataset.THERAPY_OUTCOMES
            for name in dataset.AUDITED_FIELDS:
                if name in ("followup16_done", "strength_balance16") and not due16:
                    continue
                if name == "followup52_done" and not due52:
                    continue
                counted[name] += 1
                missing[name] += _empty(row[name])
            checks = [
                (None, None),
                (None, None),
                (True, "Spine" in sites),
                (
                    due90,
                    due90 and d("assessment_date") is not None and 0 <= d("assessment_date") <= 90,
                ),
                (
                    due90 and row["dxa_status"] == "Recommended",
                    d("dxa_date") is not None and 0 <= d("dxa_date") <= 90,
                ),
                (True, "Yes" in (row["falls_assessed"], row["falls_referred"])),
                (True, aom),
                ("Hip" not in sites and due16 and alive16, row["strength_balance16"] == "Yes"),
                (
                    aom and due16 and alive16,
                    row["followup16_done"] == "Yes"
                    and d("followup16_date") is not None
                    and 0 <= d("followup16_date") <= 112,
                ),
                (aom and due16 and alive16, row["therapy16"] in dataset.DRUGS),
                (aom and due52 and alive52, row["therapy52"] in dataset.DRUGS),
            ]
            for i, (in_denominator, in_numerator) in enumerate(checks[2:], start=2):
                if in_denominator:
                    tallies[i][1] += 1
                    tallies[i][0] += bool(in_numerator)
        fields = [name for name in dataset.AUDITED_FIELDS if counted[name]]
        ok = sum(1 for name in fields if Fraction(missing[name], counted[name]) <= Fraction(1, 5))
        tallies[0] = [ok, len(fields)]
        tallies[1] = [len(cohort), None]
        return [tuple(t) for t in tallies], len(fields) > 0 and len(fields) - ok < 5

    result, national, meets = {}, [[0, 0] for _ in range(11)], []
    for sid, cohort in by_service.items():
        tallies, met = figures(cohort)
        caseload = Fraction(service_caseloads[sid] * period.months, 12)
        tallies[1] = (len(cohort), caseload)
        result[sid] = tallies
        meets.append(met)
        for i in range(1, 11):
            national[i][0] += tallies[i][0]
            national[i][1] += tallies[i][1]
    national[0] = [sum(meets), len(meets)]
    return result, [tuple(t) for t in national]


def rows_of(db):
    from sqlalchemy import select

    from portal.models import Episode, Patient

    query = select(Episode, Patient).join(Patient, Patient.id == Episode.patient_id)
    rows = []
    for episode_row, patient in db.session.execute(query):
        row = {c.key: getattr(episode_row, c.key) for c in Episode.__table__.columns}
        for name in ("sex", "postcode", "care_home_resident", "date_of_death"):
            row[name] = getattr(patient, name)
        rows.append(row)
    return rows


def assert_engine_matches_reference(db, period, day):
    from portal.models import Service

    caseloads = {s.id: s.expected_caseload for s in db.session.query(Service)}
    expected, expected_national = reference(rows_of(db), caseloads, period, day)
    with db.engine.connect() as conn:
        report = engine.report(conn, period, day)
    got = {r.service.id: [(f.numerator, f.denominator) for f in r.figures] for r in report.rows}
    assert got == expected
    assert [(f.numerator, f.denominator) for f in report.national.figures] == expected_national


def test_fixture_matches_reference(db, fixture_services):
    assert_engine_matches_reference(db, PERIOD, date(2025, 3, 15))


@given(specs=st.lists(episode, max_size=30), day=as_of)
@SETTINGS
def test_engine_matches_reference(db, services, add_episode, specs, day):
    _store(db, add_episode, services, specs)
    assert_engine_matches_reference(db, PERIOD, day)
