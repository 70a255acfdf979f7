"""Fixtures of the security tests: an app with rate limits on (the default suite runs without)."""

from __future__ import annotations

import pytest

from tests.conftest import CSRFClient, _test_config


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
