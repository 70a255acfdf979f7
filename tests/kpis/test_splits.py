"""Who is left behind: each split's parts add up to the whole, and the whole is the service's (and
the nation's) own figures; ages at the fracture as dataset.md counts them."""

from __future__ import annotations

import itertools
import random
from datetime import date, timedelta

import pytest

from kpis import counting, engine, outcomes, split_table
from kpis.periods import Period
from kpis.splits import SPLITS, age_on, split_counts

_numbers = itertools.count(4700000000)
YEAR = Period.year(2024)
AS_OF = date(2025, 9, 30)
SITES = ("Wrist", "Hip", "Spine", "Hip;Spine", "Spine;Wrist", "Humerus", None)


@pytest.fixture
def varied(db, make_service):
    """Two services with patients of every sex, age band, care-home answer and site, some with
    a later fracture, some dead, some deleted episodes."""
    from portal.models import Episode, Patient

    def fill(service, seed: int, count: int) -> None:
        rng = random.Random(seed)
        for _ in range(count):
            fracture = date(2024, 1, 1) + timedelta(days=rng.randrange(366))
            age = rng.choice((50, 64, 65, 74, 75, 84, 85, 97))
            born = date(fracture.year - age, fracture.month, min(fracture.day, 28))
            if rng.random() < 0.2:  # the birthday is tomorrow: a year younger
                born = born + timedelta(days=1)
            patient = Patient(
                service_id=service.id,
                nhs_number=str(next(_numbers)),
                date_of_birth=born,
                sex=rng.choice(("Female", "Female", "Male", "Other", "Not known")),
                care_home_resident=rng.choice(("Yes", "No", "Not known", None)),
                date_of_death=fracture + timedelta(days=rng.randrange(5, 600))
                if rng.random() < 0.25
                else None,
            )
            db.session.add(patient)
            db.session.flush()
            episode = dict(
                bone_therapy=rng.choice(("Alendronate", "Not appropriate", None)),
                therapy16=rng.choice(("Alendronate", "Not started", None)),
                therapy52=rng.choice(("Alendronate", None)),
                assessment_date=fracture + timedelta(days=rng.randrange(0, 120)),
                falls_assessed=rng.choice(("Yes", "No")),
                strength_balance16=rng.choice(("Yes", "No", None)),
            )
            db.session.add(
                Episode(
                    service_id=service.id,
                    patient_id=patient.id,
                    fracture_date=fracture,
                    fracture_sites=rng.choice(SITES),
                    **episode,
                )
            )
            if rng.random() < 0.3:
                later = fracture + timedelta(days=rng.randrange(1, 500))
                db.session.add(
                    Episode(
                        service_id=service.id,
                        patient_id=patient.id,
                        fracture_date=later,
                        fracture_sites="Wrist",
                    )
                )
        db.session.commit()

    north, south = make_service("NTH"), make_service("STH")
    fill(north, 1, 80)
    fill(south, 2, 45)
    return north, south


def _add(cells):
    return sum(c.numerator for c in cells), sum(c.denominator for c in cells)


@pytest.mark.parametrize("split", [s.name for s in SPLITS])
def test_each_splits_parts_add_up_to_the_whole(db, varied, split):
    north, south = varied
    with db.engine.connect() as conn:
        groups = split_counts(conn, split, YEAR, AS_OF)
        report = engine.report(conn, YEAR, AS_OF)
        follow = outcomes.follow_ups(conn, YEAR, AS_OF)
        infos = counting.load_services(conn)
    definition = next(s for s in SPLITS if s.name == split)
    for service in (north, south):
        own = groups[service.id]
        table = split_table.build(
            definition,
            service.name,
            YEAR,
            [(own.kpis, own.outcomes, service.expected_caseload)],
            national=False,
            public=False,
        )
        _check(table, report.row_for(service.id).figures, outcomes.figures(follow[service.id]))
        # Every part of the patients is one of the split's.
        assert set(own.kpis) <= {key for key, _ in definition.parts}
        assert set(own.outcomes) <= {key for key, _ in definition.parts}
    national = split_table.build(
        definition,
        "National",
        YEAR,
        [(g.kpis, g.outcomes, infos[sid].expected_caseload) for sid, g in groups.items()],
        national=True,
        public=False,
    )
    _check(national, report.national.figures, outcomes.figures(outcomes.pooled(follow.values())))


def _check(table, kpi_figures, outcome_figures):
    for row, figure in zip(table.rows[:11], kpi_figures, strict=True):
        # The whole is the figure of the KPI pages.
        assert (row.whole.numerator, row.whole.denominator, row.whole.value) == (
            figure.numerator,
            figure.denominator,
            figure.value,
        ), row.key
        if row.key == "kpi1":
            continue  # fields within 20% missing, worked out within each part: not additive
        numerator, denominator = _add(row.parts)
        assert numerator == row.whole.numerator, row.key
        if row.key == "kpi2":
            # The caseload is not split: each part's episodes over the whole caseload.
            assert all(p.denominator == row.whole.denominator for p in row.parts)
            assert sum(p.value for p in row.parts) == row.whole.value
        else:
            assert denominator == row.whole.denominator, row.key
    for row, figure in zip(table.rows[11:], outcome_figures, strict=True):
        assert (row.whole.numerator, row.whole.denominator, row.whole.value) == (
            figure.events,
            figure.patients,
            figure.value,
        ), row.key
        assert _add(row.parts) == (row.whole.numerator, row.whole.denominator), row.key


def test_public_table_suppresses_small_parts(db, varied):
    north, _ = varied
    with db.engine.connect() as conn:
        own = split_counts(conn, "sex", YEAR, AS_OF, [north.id])[north.id]
    table = split_table.build(
        SPLITS[0], north.name, YEAR, [(own.kpis, own.outcomes, 1200)], national=False, public=True
    )
    for row in table.rows:
        for cell in [row.whole, *row.parts]:
            assert cell.suppressed == (cell.denominator < 5)
            if cell.suppressed:
                assert cell.text == "fewer than 5" and cell.counts_text == ""
    assert "fewer than 5" in table.csv() or all(
        not c.suppressed for r in table.rows for c in r.parts
    )


@pytest.mark.parametrize(
    "born, day, age",
    [
        (date(1960, 3, 1), date(2025, 3, 1), 65),
        (date(1960, 3, 2), date(2025, 3, 1), 64),
        (date(1960, 2, 29), date(2025, 2, 28), 64),  # turns 65 on 1 March in a year without one
        (date(1960, 2, 29), date(2025, 3, 1), 65),
        (date(1960, 2, 29), date(2024, 2, 29), 64),
    ],
)
def test_age_at_the_fracture_in_python_and_sql(db, make_service, born, day, age):
    from sqlalchemy import literal, select

    from kpis.sql import age_at
    from portal.models import Patient

    assert age_on(born, day) == age
    # The same rule in SQL, on the table's own date columns.
    service = make_service()
    patient = Patient(
        service_id=service.id, nhs_number=str(next(_numbers)), date_of_birth=born, sex="Female"
    )
    db.session.add(patient)
    db.session.commit()
    from kpis.schema import patients

    query = select(age_at(patients.c.date_of_birth, literal(day, patients.c.date_of_birth.type)))
    assert db.session.execute(query.where(patients.c.id == patient.id)).scalar_one() == age
