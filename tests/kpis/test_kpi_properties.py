"""Properties of the KPI figures on generated episodes (hypothesis)."""

from __future__ import annotations

from datetime import date, timedelta

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
    assert sum(r.episodes for r in report.rows) == len(specs)


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
    assert after.row_for(changed).episodes == (
        (before.row_for(changed).episodes if before.row_for(changed) else 0) + 1
    )
