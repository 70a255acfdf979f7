"""Fixtures of the security tests: an app with rate limits on (the default suite runs without)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from tests.conftest import TEST_TODAY, CSRFClient, _test_config
from tests.integration.journey.conftest import nhs_number as _nhs_number


@pytest.fixture
def limited_app(app, tmp_path):
    """A second app on the same test database with Flask-Limiter enabled (memory storage unless
    a storage URI is given), so the limits themselves are under test."""
    from portal import create_app

    made = []

    def make(**overrides):
        config = _test_config(app.config["SQLALCHEMY_DATABASE_URI"], tmp_path)
        config.update(RATELIMIT_ENABLED=True, RATELIMIT_STORAGE_URI="memory://")
        config.update(overrides)
        limited = create_app(config)
        limited.test_client_class = CSRFClient
        made.append(limited)
        return limited

    yield make
    from portal.extensions import db

    for other in made:
        with other.app_context():
            db.session.remove()
            db.engine.dispose()
    # The limiter is one object shared by every app: give it back to the suite's default app.
    from portal.extensions import limiter

    app.config["RATELIMIT_ENABLED"] = False
    limiter.init_app(app)


@pytest.fixture
def world(db, make_service, make_user):
    """Two services, each with a patient, an episode and a clinician; ids to fill routes with."""
    from portal.models import Episode, Patient

    mine, theirs = make_service("BRD"), make_service("OTH")
    records = {}
    for service, seed in ((mine, 1), (theirs, 2)):
        patient = Patient(
            service_id=service.id,
            nhs_number=_nhs_number(seed),
            date_of_birth=date(1945, 3, 3),
            sex="Female",
        )
        db.session.add(patient)
        db.session.flush()
        episode = Episode(
            service_id=service.id,
            patient_id=patient.id,
            fracture_date=TEST_TODAY - timedelta(days=40),
            fracture_sites="Wrist",
        )
        db.session.add(episode)
        db.session.commit()
        records[service.code] = {
            "patient_id": patient.id,
            "episode_id": episode.id,
            "service_id": service.id,
            "user_id": make_user(role="clinician", services=[service]).id,
            "job_id": 1,
            "stage": "identification",
            "key": "identification",
            "token": "not-a-token",
        }
    return mine, theirs, records
