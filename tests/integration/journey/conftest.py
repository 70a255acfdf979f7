"""Helpers for the journey tests: valid NHS numbers, forms as the browser posts them, records."""

from __future__ import annotations

import re
import uuid
from datetime import date, timedelta

import pytest
from werkzeug.datastructures import MultiDict

HTMX = {"HX-Request": "true"}


def nhs_number(seed: int) -> str:
    """A valid 10-digit NHS number (modulus 11) derived from a seed."""
    n = 400000000 + seed * 7
    while True:
        first_nine = f"{n:09d}"[-9:]
        total = sum(int(d) * w for d, w in zip(first_nine, range(10, 1, -1), strict=True))
        check = 11 - total % 11
        check = 0 if check == 11 else check
        if check != 10 and len(set(first_nine)) > 1:
            return first_nine + str(check)
        n += 1


def date_inputs(name: str, day: date | None) -> dict[str, str]:
    if day is None:
        return {f"{name}-day": "", f"{name}-month": "", f"{name}-year": ""}
    return {
        f"{name}-day": str(day.day),
        f"{name}-month": str(day.month),
        f"{name}-year": str(day.year),
    }


def registration(nhs: str, fracture: date, **overrides) -> MultiDict:
    form = MultiDict(
        {
            "submission_id": str(uuid.uuid4()),
            "version": "",
            "nhs_number": nhs,
            **date_inputs("date_of_birth", date(1950, 6, 15)),
            "sex": "Female",
            "postcode": "sw1a2aa",
            "care_home_resident": "No",
            **date_inputs("fracture_date", fracture),
            **date_inputs("identification_date", fracture + timedelta(days=2)),
            "admitted": "Yes",
        }
    )
    form.setlist("fracture_sites", ["Wrist"])
    return with_values(form, **overrides)


def with_values(form: MultiDict, **values) -> MultiDict:
    """The form with some inputs replaced (a list sets a multi-value input)."""
    for key, value in values.items():
        if isinstance(value, list):
            form.setlist(key, value)
        else:
            form[key] = value
    return form


def two_renders(client, url: str, section_id: str) -> tuple[MultiDict, MultiDict]:
    """The same section's form as two users (or tabs) get it: two renders, two submission ids."""
    first = section_form(client.get(url).get_data(as_text=True), section_id)
    second = section_form(client.get(url).get_data(as_text=True), section_id)
    return first, second


def section_form(html: str, section_id: str) -> MultiDict:
    """The inputs of a rendered form inside a section, as the browser would post them."""
    start = html.index(f'id="{section_id}"')
    chunk = html[start:]
    end = chunk.find("</form>")
    chunk = chunk[: end if end >= 0 else len(chunk)]
    form = MultiDict()
    for tag in re.findall(r"<input[^>]*>", chunk):
        name = re.search(r'name="([^"]+)"', tag)
        if not name:
            continue
        value = re.search(r'value="([^"]*)"', tag)
        kind = re.search(r'type="([^"]+)"', tag)
        if kind and kind.group(1) in ("radio", "checkbox") and " checked" not in tag:
            continue
        form.add(name.group(1), _unescape(value.group(1) if value else ""))
    for select in re.finditer(r'<select[^>]*name="([^"]+)"[^>]*>(.*?)</select>', chunk, re.S):
        chosen = re.search(r'<option value="([^"]*)"[^>]*selected', select.group(2))
        form.add(select.group(1), _unescape(chosen.group(1)) if chosen else "")
    return form


def _unescape(text: str) -> str:
    import html

    return html.unescape(text)


@pytest.fixture
def register(client):
    """Register a patient through the form; returns the new episode."""

    def make(nhs: str, fracture: date, **overrides):
        from portal.extensions import db
        from portal.models import Episode, Patient

        response = client.post("/patients/new", data=registration(nhs, fracture, **overrides))
        assert response.status_code == 303, response.get_data(as_text=True)[:3000]
        patient = db.session.query(Patient).filter_by(nhs_number=nhs).one()
        return db.session.query(Episode).filter_by(patient_id=patient.id).one()

    return make


@pytest.fixture
def editor(signed_in):
    """A signed-in clinician of service BRD: (client, user, service)."""
    return signed_in()
