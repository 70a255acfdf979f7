"""Walks the app's url_map: every route, with ids filled in, for the tests that try to break it."""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask

# Stand-ins for path parameters of routes; ids are replaced by real ids where a test has them.
_DEFAULTS = {"int": "1", "string": "x", "path": "x", "uuid": "00000000-0000-0000-0000-000000000000"}


@dataclass(frozen=True)
class Route:
    endpoint: str
    rule: str
    methods: frozenset[str]

    def path(self, **values: object) -> str:
        """The rule with each parameter filled in (given values first, else a stand-in)."""
        path = self.rule
        for name, converter in _parameters(self.rule):
            value = values.get(name, _DEFAULTS.get(converter, "1"))
            path = path.replace(f"<{converter}:{name}>" if converter else f"<{name}>", str(value))
        return path


def _parameters(rule: str) -> list[tuple[str | None, str | None]]:
    out = []
    for part in rule.split("<")[1:]:
        inner = part.split(">")[0]
        converter, _, name = inner.rpartition(":")
        out.append((name, converter or None))
    return out


def all_routes(app: Flask) -> list[Route]:
    routes = []
    for rule in app.url_map.iter_rules():
        methods = frozenset(rule.methods - {"HEAD", "OPTIONS"})
        routes.append(Route(rule.endpoint, rule.rule, methods))
    return sorted(routes, key=lambda r: r.rule)


def get_routes(app: Flask) -> list[Route]:
    return [r for r in all_routes(app) if "GET" in r.methods and r.endpoint != "static"]


def state_changing_routes(app: Flask) -> list[Route]:
    return [r for r in all_routes(app) if r.methods & {"POST", "PUT", "PATCH", "DELETE"}]
