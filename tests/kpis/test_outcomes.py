"""The outcome measures (spec/outcomes.md) on hand-worked cases and against a plain reading of
the formulas: observed time and status, Aalen-Johansen cumulative incidence, mortality."""

from __future__ import annotations

from datetime import date, timedelta
from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from kpis import outcomes
from kpis.outcomes import CENSORED, DEATH, REFRACTURE, FollowUp, IndexPatient

DAY0 = date(2024, 1, 1)


def patient(refracture: int | None = None, death: int | None = None, service_id: int = 1):
    return IndexPatient(
        service_id,
        DAY0,
        None if refracture is None else DAY0 + timedelta(days=refracture),
        None if death is None else DAY0 + timedelta(days=death),
    )


def follow(*people: IndexPatient, followed: int = 1000) -> FollowUp:
    group = FollowUp()
    for person in people:
        group.add(person, DAY0 + timedelta(days=followed))
    return group


def by_name(group: FollowUp) -> dict[str, outcomes.OutcomeFigure]:
    return {f.measure.name: f for f in outcomes.figures(group)}


def test_observed_time_and_status():
    as_of = DAY0 + timedelta(days=500)
    assert outcomes.observed(patient(), as_of) == (500, CENSORED)
    assert outcomes.observed(patient(refracture=100), as_of) == (100, REFRACTURE)
    assert outcomes.observed(patient(death=40), as_of) == (40, DEATH)
    assert outcomes.observed(patient(refracture=100, death=40), as_of) == (40, DEATH)
    # A refracture on the day of death counts as a refracture.
    assert outcomes.observed(patient(refracture=60, death=60), as_of) == (60, REFRACTURE)
    # Events after the as-of date are not yet observed.
    assert outcomes.observed(patient(refracture=501, death=502), as_of) == (500, CENSORED)
    # On the as-of date they are.
    assert outcomes.observed(patient(death=500), as_of) == (500, DEATH)
    # A death on the index day is an event at day 0.
    assert outcomes.observed(patient(death=0), as_of) == (0, DEATH)


def test_hand_worked_cumulative_incidence():
    """Five patients: a death at 50, refractures at 100 and 400, one censored at 200, one followed
    to 1000. S: 1 -> 4/5 (day 50) -> 3/5 (day 100); CIF(365) = 4/5 x 1/4 = 1/5;
    CIF(730) = 1/5 + 3/5 x 1/2 = 1/2."""
    group = FollowUp()
    for person, followed in [
        (patient(death=50), 1000),
        (patient(refracture=100), 1000),
        (patient(), 200),
        (patient(refracture=400), 1000),
        (patient(), 1000),
    ]:
        group.add(person, DAY0 + timedelta(days=followed))
    year = outcomes.cumulative_incidence(group, 365)
    assert year == outcomes.Incidence(Fraction(1, 5), events=1, at_risk=2)
    two_years = outcomes.cumulative_incidence(group, 730)
    assert two_years == outcomes.Incidence(Fraction(1, 2), events=2, at_risk=1)
    figures = by_name(group)
    assert figures["refracture_12m"].value_text == "20.0"
    assert figures["refracture_24m"].value_text == "50.0"
    assert figures["refracture_12m"].patients == 5


def test_no_value_when_nobody_is_at_risk_but_events_and_at_risk_given():
    group = follow(patient(refracture=40), patient(death=10), followed=300)
    figures = by_name(group)
    twelve = figures["refracture_12m"]
    assert (twelve.patients, twelve.events, twelve.at_risk, twelve.value) == (2, 1, 0, None)
    assert twelve.value_text == ""


def test_an_event_at_day_zero_and_exact_thirds():
    """Three patients, one dies on day 0: S(0) = 2/3; a refracture at day 31 of 2 at risk:
    CIF = 2/3 x 1/2 = 1/3 -> 33.3."""
    group = follow(patient(death=0), patient(refracture=31), patient(), followed=800)
    assert outcomes.cumulative_incidence(group, 365).cif == Fraction(1, 3)
    assert by_name(group)["refracture_12m"].value_text == "33.3"


def test_refracture_on_the_horizon_counts_and_at_risk_counts_it():
    group = follow(patient(refracture=365), patient(), followed=800)
    incidence = outcomes.cumulative_incidence(group, 365)
    # T >= h for both; the refracture at exactly h is an event of the 12-month measure.
    assert incidence == outcomes.Incidence(Fraction(1, 2), events=1, at_risk=2)


def test_mortality_denominator_is_followed_long_enough():
    as_of = DAY0 + timedelta(days=40)
    group = FollowUp()
    group.add(patient(death=30), as_of)  # died on day 30: within 30 days
    group.add(patient(death=31), as_of)  # day 31: not
    group.add(patient(), as_of)
    late = IndexPatient(1, as_of - timedelta(days=29), None, None)  # followed 29 days only
    group.add(late, as_of)
    figures = by_name(group)
    thirty = figures["mortality_30d"]
    assert (thirty.patients, thirty.events, thirty.at_risk, thirty.value_text) == (
        3,
        1,
        None,
        "33.3",
    )
    year = figures["mortality_1y"]
    assert (year.patients, year.events, year.value) == (0, 0, None)


def test_mortality_rounds_half_up():
    # 1 of 8 = 12.5 exactly: one decimal already; 1 of 16 = 6.25 -> 6.3 (half up).
    deaths = [patient(death=5)] + [patient() for _ in range(15)]
    assert by_name(follow(*deaths))["mortality_30d"].value_text == "6.3"


def test_empty_group_has_no_values():
    figures = by_name(FollowUp())
    assert [(f.patients, f.events, f.at_risk, f.value_text) for f in figures.values()] == [
        (0, 0, 0, ""),
        (0, 0, 0, ""),
        (0, 0, None, ""),
        (0, 0, None, ""),
    ]


def test_pooled_is_the_union():
    first = follow(patient(refracture=100), patient(death=20))
    second = follow(patient(), patient(refracture=500))
    together = follow(
        patient(refracture=100), patient(death=20), patient(), patient(refracture=500)
    )
    assert outcomes.pooled([first, second]) == together


# --- against a plain reading of the formulas ----------------------------------------------------


def plain_cif(people: list[tuple[int, str]], horizon: int) -> Fraction | None:
    """CIF(h) straight from the contract's words, patient by patient."""
    times = sorted({t for t, status in people if status != CENSORED})
    survival, cif = Fraction(1), Fraction(0)
    for t in times:
        if t > horizon:
            break
        n = sum(1 for time, _ in people if time >= t)
        r = sum(1 for time, status in people if time == t and status == REFRACTURE)
        e = sum(1 for time, status in people if time == t and status != CENSORED)
        cif += survival * Fraction(r, n)
        survival *= 1 - Fraction(e, n)
    at_risk = sum(1 for time, _ in people if time >= horizon)
    return cif if at_risk else None


people_strategy = st.lists(
    st.tuples(
        st.one_of(st.none(), st.integers(31, 900)),
        st.one_of(st.none(), st.integers(0, 900)),
        st.integers(0, 900),
    ),
    max_size=40,
)


@settings(max_examples=150, deadline=None)
@given(people_strategy)
def test_cumulative_incidence_matches_the_formula(rows):
    group = FollowUp()
    observed = []
    for refracture, death, followed in rows:
        person = patient(refracture=refracture, death=death)
        as_of = DAY0 + timedelta(days=followed)
        group.add(person, as_of)
        observed.append(outcomes.observed(person, as_of))
    for horizon in (365, 730):
        incidence = outcomes.cumulative_incidence(group, horizon)
        assert incidence.cif == plain_cif(observed, horizon)
        assert incidence.events == sum(
            1 for t, status in observed if status == REFRACTURE and t <= horizon
        )
        if incidence.cif is not None:
            assert 0 <= incidence.cif <= 1
    # The 24-month incidence never falls below the 12-month one.
    twelve = outcomes.cumulative_incidence(group, 365).cif
    twenty_four = outcomes.cumulative_incidence(group, 730).cif
    if twelve is not None and twenty_four is not None:
        assert twenty_four >= twelve


@settings(max_examples=100, deadline=None)
@given(people_strategy, st.integers(0, 40))
def test_pooling_is_additive(rows, cut):
    people = [patient(refracture=r, death=d) for r, d, _ in rows]
    whole = follow(*people)
    parts = [follow(*people[:cut]), follow(*people[cut:])]
    assert outcomes.pooled(parts) == whole
