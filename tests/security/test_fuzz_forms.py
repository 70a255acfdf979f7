"""Hypothesis fuzzing of every form endpoint: whatever is posted, never a 5xx, and never a partial
write: a refused post changes nothing, and an accepted one that changes data is audited."""

from __future__ import annotations

import html as html_module
import re
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.datastructures import MultiDict

from tests.conftest import sign_in
from tests.security.test_break import figures, without

NASTY = [
    "",
    " ",
    "0",
    "-1",
    "1.5",
    "1e9",
    "99999999999999999999",
    "2024-02-30",
    "31",
    "13",
    "00",
    "abc",
    "Yes",
    "No",
    "Unknown",
    "Not known",
    "\x00",
    "\u202e",
    "😀",
    "<b>x</b>",
    "' OR 1=1 --",
    '=HYPERLINK("x")',
    "A" * 300,
    "Hip",
    "Wrist",
    "Female",
    "admin",
]
VALUES = st.one_of(st.sampled_from(NASTY), st.text(max_size=24))
# Fields that only steer the save (a new id each time keeps replays from short-cutting).
CONTROLS = {"csrf_token"}


def _forms(html: str) -> list[tuple[str, MultiDict]]:
    """Every POST form of a page: (action, fields as the browser would post them)."""
    out = []
    for match in re.finditer(r"<form([^>]*)>(.*?)</form>", html, re.S):
        attrs, body = match.groups()
        if 'method="post"' not in attrs:
            continue
        action = re.search(r'action="([^"]*)"', attrs)
        fields = MultiDict()
        for tag in re.findall(r"<input[^>]*>", body):
            name = re.search(r'name="([^"]+)"', tag)
            if not name or name.group(1) in CONTROLS:
                continue
            kind = re.search(r'type="([^"]+)"', tag)
            if kind and kind.group(1) in ("radio", "checkbox") and " checked" not in tag:
                fields.setdefault(name.group(1), "")
                continue
            value = re.search(r'value="([^"]*)"', tag)
            fields.add(name.group(1), html_module.unescape(value.group(1) if value else ""))
        for select in re.finditer(r'<select[^>]*name="([^"]+)"[^>]*>(.*?)</select>', body, re.S):
            chosen = re.search(r'<option value="([^"]*)"[^>]*selected', select.group(2))
            fields.add(select.group(1), html_module.unescape(chosen.group(1)) if chosen else "")
        for area in re.finditer(r'<textarea[^>]*name="([^"]+)"[^>]*>(.*?)</textarea>', body, re.S):
            fields.add(area.group(1), html_module.unescape(area.group(2)))
        out.append((html_module.unescape(action.group(1)) if action else "", fields))
    return out


def _fuzz(client, db, page_path: str, action_pattern: str, data):
    """Post fuzzed variants of the form on `page_path` whose action matches `action_pattern`."""
    page = client.get(page_path)
    assert page.status_code == 200, (page_path, page.status_code)
    # A form without an action posts to its own page.
    forms = [
        (a or page_path, f)
        for a, f in _forms(page.get_data(as_text=True))
        if re.search(action_pattern, a or page_path)
    ]
    assert forms, f"no form posting to {action_pattern} on {page_path}"
    action, fields = forms[0]
    names = sorted(set(fields.keys()) | {"service_id", "role"})
    overrides = data.draw(st.dictionaries(st.sampled_from(names), VALUES, max_size=6))
    dropped = data.draw(st.sets(st.sampled_from(names), max_size=2))
    posted = fields.copy()
    if "submission_id" in posted:
        posted["submission_id"] = str(uuid.uuid4())
    for name, value in overrides.items():
        posted[name] = value
    for name in dropped:
        posted.poplist(name)
    htmx = data.draw(st.booleans())
    before = figures(db)
    response = client.post(action, data=posted, headers={"HX-Request": "true"} if htmx else {})
    after = figures(db)
    where = (action, dict(posted.lists()), response.status_code)
    assert response.status_code < 500, where
    if response.status_code >= 400:
        assert without(after, "audit_events") == without(before, "audit_events"), (
            "refused but written",
            where,
        )
        return
    # The idempotency record of a save (offline.md) is bookkeeping, not data to audit.
    changed = without(after, "audit_events", "submissions") != without(
        before, "audit_events", "submissions"
    )
    if changed and not action.startswith("/auth/"):
        assert after["audit_events"]["rows"] > before["audit_events"]["rows"], ("unaudited", where)


FUZZ = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture
def lead_client(client, world, make_user):
    mine, _, records = world
    sign_in(client, make_user(role="lead", services=[mine]))
    return client, records["BRD"]


@pytest.fixture
def admin_client(client, world, make_user):
    mine, _, records = world
    sign_in(client, make_user(role="admin", services=[mine]))
    return client, records["BRD"]


@FUZZ
@given(data=st.data())
def test_fuzz_registration(lead_client, db, data):
    client, _ = lead_client
    _fuzz(client, db, "/patients/new", r"^/patients/new", data)


@FUZZ
@given(data=st.data())
def test_fuzz_patient_details(lead_client, db, data):
    client, ids = lead_client
    _fuzz(client, db, f"/patients/{ids['patient_id']}", rf"^/patients/{ids['patient_id']}$", data)


@FUZZ
@given(data=st.data())
def test_fuzz_new_episode(lead_client, db, data):
    client, ids = lead_client
    path = f"/patients/{ids['patient_id']}/episodes/new"
    _fuzz(client, db, path, rf"^{path}$", data)


@pytest.mark.parametrize(
    "stage", ["identification", "assessment", "treatment", "followup16", "followup52"]
)
def test_fuzz_each_stage(lead_client, db, stage):
    client, ids = lead_client

    @FUZZ
    @given(data=st.data())
    def run(data):
        _fuzz(client, db, f"/episodes/{ids['episode_id']}", rf"/stages/{stage}$", data)

    run()


@FUZZ
@given(data=st.data())
def test_fuzz_delete_episode(lead_client, db, data):
    client, ids = lead_client
    path = f"/episodes/{ids['episode_id']}/delete"
    if client.get(path).status_code == 404:  # deleted by an earlier example: restore it
        client.post(f"/episodes/{ids['episode_id']}/restore")
    _fuzz(client, db, path, rf"^{path}$", data)


@FUZZ
@given(data=st.data())
def test_fuzz_admin_new_user(admin_client, db, data):
    client, _ = admin_client
    _fuzz(client, db, "/admin/users/new", r"^/admin/users/new$", data)


@FUZZ
@given(data=st.data())
def test_fuzz_admin_edit_user(admin_client, db, data):
    client, ids = admin_client
    path = f"/admin/users/{ids['user_id']}"
    _fuzz(client, db, path, rf"^{path}$", data)


@FUZZ
@given(data=st.data())
def test_fuzz_admin_services(admin_client, db, data):
    client, ids = admin_client
    _fuzz(client, db, "/admin/services/new", r"^/admin/services/new$", data)
    path = f"/admin/services/{ids['service_id']}"
    _fuzz(client, db, path, rf"^{path}$", data)


@FUZZ
@given(data=st.data())
def test_fuzz_confirm_it_is_you(lead_client, db, data):
    client, _ = lead_client
    # The page's password input is empty, so the password is never right: every example is a
    # refusal (the password page itself is behind this one).
    _fuzz(client, db, "/auth/confirm", r"^/auth/confirm$", data)


@FUZZ
@given(
    email=st.one_of(st.sampled_from(NASTY), st.emails().map(str)),
    password=VALUES,
)
def test_fuzz_sign_in(client, db, email, password):
    # A failed sign-in writes only the trail and its count of failures (per email and address).
    before = without(figures(db), "audit_events", "users", "sign_in_throttles")
    response = client.post("/auth/sign-in", data={"email": email, "password": password})
    # A NUL character is refused before any view runs (security.py), everything else is a page.
    expected = (400,) if "\x00" in email + password else (200, 429)
    assert response.status_code in expected, response.status_code
    assert without(figures(db), "audit_events", "users", "sign_in_throttles") == before


@FUZZ
@given(service_id=VALUES, next_url=VALUES)
def test_fuzz_choose_service(lead_client, db, service_id, next_url):
    client, _ = lead_client
    before = figures(db)
    response = client.post("/service", data={"service_id": service_id, "next": next_url})
    assert response.status_code in (302, 400, 404), response.status_code
    if response.status_code == 302:
        assert response.headers["Location"].startswith("/")
        assert not response.headers["Location"].startswith("//")
    assert without(figures(db), "audit_events") == without(before, "audit_events")


@FUZZ
@given(
    content=st.one_of(
        st.binary(max_size=400),
        st.lists(st.lists(VALUES, max_size=6), max_size=6).map(
            lambda rows: "\n".join(",".join(r) for r in rows).encode("utf-8", "surrogatepass")
        ),
    ),
    name=st.sampled_from(["records.csv", "x.txt", "", "../../etc/passwd", "a" * 300 + ".csv"]),
)
def test_fuzz_import_upload(lead_client, db, content, name):
    import io

    client, _ = lead_client
    before = without(figures(db), "audit_events", "import_jobs", "import_upload_chunks")
    response = client.post(
        "/records/import",
        data={"file": (io.BytesIO(content), name)},
        content_type="multipart/form-data",
    )
    assert response.status_code < 500, response.status_code
    # The check runs as a queued task (at once here: Huey's immediate mode); it must not crash.
    from portal.models import ImportJob

    db.session.expire_all()
    jobs = db.session.query(ImportJob).all()
    assert not [(j.id, j.error) for j in jobs if j.status == "failed"], (content, name)
    # An upload only previews: no patient or episode is written before "apply".
    after = without(figures(db), "audit_events", "import_jobs", "import_upload_chunks")
    assert after["patients"] == before["patients"] and after["episodes"] == before["episodes"]
