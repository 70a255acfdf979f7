"""The figure cache: keys follow what is shown and the data versions; the in-process store is
bounded; Redis shares entries between workers."""

from __future__ import annotations

import os
import uuid

import pytest

from kpis.cache import FigureCache, MemoryStore, RedisStore, cache_key
from portal import clock

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def test_key_changes_with_what_and_with_any_data_version():
    what = {"page": "report", "period": "2024-01..2024-12", "as_of": "2025-03-15"}
    key = cache_key(what, {"AAA": 1, "BBB": 4})
    assert key == cache_key(dict(reversed(what.items())), {"BBB": 4, "AAA": 1})
    assert key != cache_key(what, {"AAA": 2, "BBB": 4})
    assert key != cache_key(what | {"as_of": "2025-03-16"}, {"AAA": 1, "BBB": 4})


def test_computed_once_then_served():
    cache = FigureCache(MemoryStore())
    calls = []
    for _ in range(3):
        assert cache.get_or_compute("k", lambda: calls.append(1) or {"value": 42}) == {"value": 42}
    assert len(calls) == 1 and cache.hits == 2 and cache.misses == 1


def test_memory_store_drops_the_least_recently_used():
    store = MemoryStore(max_entries=2)
    store.set("a", b"1")
    store.set("b", b"2")
    assert store.get("a") == b"1"  # a is now the most recent
    store.set("c", b"3")
    assert store.get("b") is None and store.get("a") == b"1" and store.get("c") == b"3"


def test_memory_store_is_bounded_in_bytes():
    store = MemoryStore(max_bytes=10)
    store.set("a", b"12345")
    store.set("b", b"12345")
    store.set("a", b"1234")  # replacing an entry counts its new size only
    store.set("c", b"123")
    assert store.get("b") is None  # the least recently used went first
    assert store.get("a") == b"1234" and store.get("c") == b"123"


def _redis_or_skip():
    import redis

    try:
        redis.Redis.from_url(REDIS_URL).ping()
    except redis.RedisError as error:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip(f"REDIS NOT AVAILABLE at {REDIS_URL}: {error}")


def test_redis_store_is_shared_between_workers():
    _redis_or_skip()
    key = f"fls:kpi:test:{uuid.uuid4().hex}"
    first, second = (
        FigureCache(RedisStore(REDIS_URL, ttl=60)),
        FigureCache(RedisStore(REDIS_URL, ttl=60)),
    )
    assert first.get_or_compute(key, lambda: [1, 2, 3]) == [1, 2, 3]
    assert second.get_or_compute(key, lambda: pytest.fail("computed twice")) == [1, 2, 3]
    assert second.hits == 1


def test_redis_away_means_computing_not_failing():
    cache = FigureCache(RedisStore("redis://127.0.0.1:1/0", ttl=60))
    assert cache.get_or_compute("k", lambda: "figures") == "figures"


def test_two_apps_share_figures_through_redis(app, fixture_services, client):
    """Two workers (apps) on one database: the second serves what the first computed."""
    _redis_or_skip()
    from portal import create_app
    from portal.kpi_pages import caching
    from portal.kpi_pages import figures as kpi_figures

    app.config["REDIS_URL"] = REDIS_URL
    app.extensions.pop("kpi_cache", None)
    client.get("/benchmarks/", query_string={"year": "2024"})
    first = app.extensions["kpi_cache"]
    assert isinstance(first.store, RedisStore)

    other = create_app(
        {
            "TESTING": True,
            "SQLALCHEMY_DATABASE_URI": app.config["SQLALCHEMY_DATABASE_URI"],
            "SECRET_KEY": "test-secret-key",
            "RATELIMIT_ENABLED": False,
            "REDIS_URL": REDIS_URL,
        }
    )
    with other.app_context():
        cache = caching.figure_cache()
        report = kpi_figures.benchmarks(2024, clock.today())
        assert [r.code for r in report.rows] == ["AAA", "BBB"]
        assert cache.misses == 0 and cache.hits == 1
        from portal.extensions import db

        db.session.remove()
        db.engine.dispose()
