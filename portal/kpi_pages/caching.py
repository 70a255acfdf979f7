"""The KPI figure cache of the portal: every figure and chart is kept once per change of the data,
keyed by what it shows and by `Service.data_version` of every service it covers (kpis.cache)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any, TypeVar

from flask import current_app
from sqlalchemy import select

from kpis import counting
from kpis.cache import FigureCache, cache_key, make_store
from kpis.periods import Period
from portal.extensions import db
from portal.models import Service

T = TypeVar("T")
Versions = dict[int, tuple[str, int]]


def figure_cache() -> FigureCache:
    """The app's cache: Redis when REDIS_URL is set (shared by every worker), else in-process."""
    cache = current_app.extensions.get("kpi_cache")
    if cache is None:
        cache = FigureCache(make_store(current_app.config.get("REDIS_URL")))
        current_app.extensions["kpi_cache"] = cache
    return cache


def data_versions() -> Versions:
    """Every service's (code, data version), by id."""
    rows = db.session.execute(select(Service.id, Service.code, Service.data_version)).all()
    return {id_: (code, version or 0) for id_, code, version in rows}


def _database() -> str:
    """The database, as part of every key, so two databases never share an entry in one Redis."""
    return db.engine.url.render_as_string(hide_password=True)


def _key(what: dict[str, Any], versions: Versions, where: str | None = None) -> str:
    return cache_key(
        what | {"db": where or _database()},
        {f"{id_}:{code}": version for id_, (code, version) in versions.items()},
    )


def cached(what: dict[str, Any], compute: Callable[[], T], versions: Versions | None = None) -> T:
    """The stored value for what is shown at the current data versions of every service (national
    figures and charts with a national line depend on all of them), else compute and keep it."""
    versions = versions if versions is not None else data_versions()
    value: T = figure_cache().get_or_compute(_key(what, versions), compute)
    return value


def cached_fragment(what: dict[str, Any], as_of: date, render: Callable[[], str]) -> str:
    """A rendered piece of a page of figures over every service (HTML without anything of the
    user or session in it), kept until any service's data changes."""
    return cached(what | {"as_of": as_of, "fragment": True}, render)


def counts_by_service(
    periods: list[Period],
    as_of: date,
    by_month: bool = False,
    versions: Versions | None = None,
    only: int | None = None,
) -> list[dict[int, Any]]:
    """Each service's counts for each period (or by month), each kept under that service's own
    data version: after a change in one service only that service is counted again, and the
    national figures are pooled from the rest as kept. One list entry per period, mapping every
    service (or `only` that one) to its counts (None without episodes). The periods must not
    overlap."""
    cache = figure_cache()
    versions = versions if versions is not None else data_versions()
    keys: dict[tuple[int, int], str] = {}
    where = _database()
    wanted_services = versions if only is None else {only: versions[only]}
    for index, period in enumerate(periods):
        what = {"page": "counts", "period": str(period), "as_of": as_of, "by_month": by_month}
        for sid, version in wanted_services.items():
            keys[(sid, index)] = _key(what | {"service": sid}, {sid: version}, where)
    result: list[dict[int, Any]] = [{} for _ in periods]
    missing: list[tuple[int, int]] = []
    for (sid, index), key in keys.items():
        found, value = cache.lookup(key)
        if found:
            result[index][sid] = value
        else:
            missing.append((sid, index))
    if missing:
        services = {sid for sid, _ in missing}
        wanted = sorted({index for _, index in missing})
        # One grouped query: over every service when most are missing (a scan by date is then
        # cheaper than an index search per service), else over the missing ones only.
        scope = None if len(services) * 2 > len(versions) else services
        with db.engine.connect() as conn:
            groups = counting.aggregate_periods(
                conn, [periods[i] for i in wanted], as_of, scope, by_month=by_month
            )
        fresh: dict[tuple[int, int], Any] = dict.fromkeys(missing)
        for (sid, position, month), counts in groups.items():
            slot = (sid, wanted[position])
            if slot not in fresh:
                continue
            if by_month:
                fresh[slot] = (fresh[slot] or {}) | {month: counts}
            else:
                fresh[slot] = counts
        for (sid, index), value in fresh.items():
            cache.put(keys[(sid, index)], value)
            result[index][sid] = value
    return result


def per_service(
    what: dict[str, Any],
    compute: Callable[[set[int] | None], dict[int, T]],
    versions: Versions | None = None,
) -> dict[int, T | None]:
    """Every service's value of `what` (None for a service without data), each kept under that
    service's own data version: after a change in one service only that one is computed again.
    `compute(scope)` computes the values of the services in `scope` (None: every service) in one
    go and leaves out those without data."""
    cache = figure_cache()
    versions = versions if versions is not None else data_versions()
    where = _database()
    keys = {
        sid: _key(what | {"service": sid}, {sid: version}, where)
        for sid, version in versions.items()
    }
    result: dict[int, T | None] = {}
    missing: set[int] = set()
    for sid, key in keys.items():
        found, value = cache.lookup(key)
        if found:
            result[sid] = value
        else:
            missing.add(sid)
    if missing:
        # Every service in one pass when most are missing, else the missing ones only.
        fresh = compute(None if len(missing) * 2 > len(versions) else missing)
        for sid in missing:
            value = fresh.get(sid)
            cache.put(keys[sid], value)
            result[sid] = value
    return result


def service_infos() -> dict[int, counting.ServiceInfo]:
    with db.engine.connect() as conn:
        return counting.load_services(conn)
