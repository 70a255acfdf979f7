"""No request gets a 5xx, whatever its query string (security.md, "Requests and pages"): every GET
route of app.url_map, for every role and signed out, with hostile values of every parameter a
page reads (huge, negative, zero, non-numeric, unicode, repeated keys)."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest

from tests.conftest import sign_in
from tests.security.routes import get_routes

# Every query parameter some page reads, and a few that none does.
PARAMETERS = (
    "year", "kind", "quarter", "from", "to", "as_of", "service", "sort", "order", "page",
    "status", "nhs", "next", "user", "entity_type", "entity_id", "action", "date_from",
    "date_to", "q", "goto", "resort", "fmt",
)  # fmt: skip
HOSTILE = (
    "1", "0", "-1", "10000", "99999999999999999999999999", "-99999999999999999999",
    "1e308", "NaN", "inf", "2025-13", "2025-00", "0000-01", "9999-12", "2025-02-30",
    "0001-01-01", "9999-12-31",
    "x" * 5000, "١٢٣", "２０２５", "😀", "%", "' OR 1=1 --", "../../etc/passwd", " ", "",
)  # fmt: skip


NUMBERS = ("year", "quarter", "page", "entity_id", "goto")
NUMBER_VALUES = ("0", "-1", "10000", "99999999999999999999999999", "abc")


def _queries() -> list[str]:
    # Every parameter at once with each hostile value; then each number on its own (a bad value
    # of one parameter must not hide a crash on another).
    queries = [urlencode({name: value for name in PARAMETERS}) for value in HOSTILE]
    queries += [urlencode({name: value}) for name in NUMBERS for value in NUMBER_VALUES]
    # Repeated keys, and several bad values together.
    queries += [
        "year=2024&year=0&year=-5",
        "kind=year&year=0",
        "kind=year&year=10000",
        "kind=quarter&year=2024&quarter=0",
        "kind=quarter&year=0&quarter=1",
        "kind=quarter&year=2024&quarter=99999999999999999999",
        "kind=months&from=0001-01&to=9999-12",
        "kind=months&from=2025-06&to=2024-01",
        "kind=months&from=0000-01&to=0000-02",
        "as_of=0001-01-01&kind=year&year=1",
        "as_of=9999-12-31&kind=year&year=9999",
        "as_of=0001-01-01",
        "sort=kpi99&order=desc",
        "sort=kpi0",
        "page=0&goto=-1",
        "date_from=0001-01-01&date_to=9999-12-31",
        "date_from=9999-12-31",
    ]
    return queries


QUERIES = _queries()


def _paths(app, records) -> list[str]:
    return [route.path(**records["BRD"]) for route in get_routes(app)]


def _walk(client, paths) -> list[str]:
    failures = []
    for path in paths:
        for query in QUERIES:
            response = client.get(f"{path}?{query}")
            response.close()  # a streamed download ends its request context only when closed
            if response.status_code >= 500:
                failures.append(f"{path}?{query[:60]}")
    return failures


@pytest.mark.parametrize("role", [None, "clinician", "lead", "admin"])
def test_no_query_string_gets_a_server_error(app, client, world, make_user, role):
    mine, _theirs, records = world
    app.config["PROPAGATE_EXCEPTIONS"] = False  # a crash answers 500, as in production
    if role is not None:
        sign_in(client, make_user(role=role, services=[mine]))
    failures = _walk(client, _paths(app, records))
    assert not failures, f"{len(failures)} answers of 5xx:\n" + "\n".join(failures)


@pytest.mark.parametrize(
    "path",
    [
        "/kpis/report?year=1",
        "/kpis/report?year=0",
        "/kpis/report?year=-1",
        "/kpis/report?year=10000",
        "/kpis/?kind=year&year=0",
    ],
)
def test_an_impossible_year_gets_a_plain_words_answer(signed_in, path):
    client, _user, _service = signed_in(role="lead")
    response = client.get(path)
    assert response.status_code in (200, 400), response.status_code
    assert b"year" in response.data.lower()


@pytest.mark.parametrize("value", ["99999999999999999999", "-1", "0", "٣", "x", ""])
def test_choosing_a_service_with_an_impossible_id_is_a_400(signed_in, value):
    """The form field of the service switch, as the fuzzer found: an id no database integer holds
    answered 500."""
    client, _user, _service = signed_in(role="lead")
    assert client.post("/service", data={"service_id": value}).status_code == 400
