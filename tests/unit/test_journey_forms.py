"""The journey's form reading, without a request: date parts, multi-values, fields that do not
apply, and the conflict view's choices."""

from __future__ import annotations

from datetime import date

import pytest
from werkzeug.datastructures import MultiDict

from portal.journey import forms as journey


def test_date_parts_join_and_refuse_with_the_field_named():
    values, errors = journey.read_form(
        ("fracture_date",),
        MultiDict(
            {"fracture_date-day": "12", "fracture_date-month": "3", "fracture_date-year": "2024"}
        ),
    )
    assert values == {"fracture_date": date(2024, 3, 12)} and errors == {}
    _, errors = journey.read_form(
        ("dxa_date",), MultiDict({"dxa_date-day": "12", "dxa_date-year": "2024"})
    )
    assert errors == {"dxa_date": "Date of DXA must include a month"}
    _, errors = journey.read_form(("dxa_date",), MultiDict({"dxa_date-day": "1"}))
    assert errors == {"dxa_date": "Date of DXA must include a month and a year"}
    _, errors = journey.read_form(
        ("dxa_date",),
        MultiDict({"dxa_date-day": "x", "dxa_date-month": "3", "dxa_date-year": "2024"}),
    )
    assert "real date" in errors["dxa_date"]
    values, errors = journey.read_form(("dxa_date",), MultiDict())
    assert values == {"dxa_date": None} and errors == {}


def test_multi_values_come_in_dataset_order():
    form = MultiDict([("fracture_sites", "Wrist"), ("fracture_sites", "Hip")])
    values, errors = journey.read_form(("fracture_sites",), form)
    assert values == {"fracture_sites": "Hip;Wrist"} and not errors


@pytest.mark.parametrize(
    "controller, answer, dependent, kept",
    [
        ("dxa_status", "Recommended", "dxa_not_recommended_reason", False),
        ("dxa_status", "Not recommended", "dxa_not_recommended_reason", True),
        ("followup16_done", "No", "followup16_date", False),
        ("followup16_done", "Yes", "followup16_date", True),
    ],
)
def test_a_field_that_does_not_apply_is_discarded(controller, answer, dependent, kept):
    form = MultiDict({controller: answer})
    if dependent.endswith("_date"):
        form.update(
            {f"{dependent}-day": "1", f"{dependent}-month": "2", f"{dependent}-year": "2024"}
        )
    else:
        form[dependent] = "Other"
    values, _ = journey.read_form((controller, dependent), form)
    assert (values[dependent] is not None) is kept


def test_form_inputs_round_trip_through_read_form():
    stored = {
        "assessment_date": date(2024, 4, 1),
        "height_cm": 165.0,
        "t_score": -2.0,
        "smoker": "Ex",
        "dxa_status": "Recommended",
        "dxa_date": date(2024, 4, 2),
    }
    fields = tuple(stored)
    inputs = journey.form_inputs(fields, stored)
    assert inputs["height_cm"] == "165" and inputs["t_score"] == "-2.0"
    values, errors = journey.read_form(fields, inputs)
    assert values == stored and not errors


def test_conflict_choices_pick_each_side():
    form = MultiDict(
        [
            ("version", "3"),
            ("calcium_vitd", "Yes"),
            ("yours::bone_therapy", "Alendronate"),
            ("yours::bone_therapy", "HRT"),
            ("theirs::bone_therapy", "Denosumab"),
            ("choose::bone_therapy", "yours"),
            ("yours::dxa_date-day", "2"),
            ("theirs::dxa_date-day", "3"),
        ]
    )
    resolved = journey.resolve_conflict_form(form)
    assert resolved.getlist("bone_therapy") == ["Alendronate", "HRT"]
    # No pick keeps the stored value: nothing is overwritten silently.
    assert resolved.get("dxa_date-day") == "3"
    assert resolved.get("calcium_vitd") == "Yes" and resolved.get("version") == "3"
    assert not any(name.startswith(("yours::", "theirs::", "choose::")) for name in resolved)


def test_field_of_input_names():
    assert journey.field_of("fracture_date-year") == "fracture_date"
    assert journey.field_of("nhs_number") == "nhs_number"
    assert journey.field_of("followup16_done") == "followup16_done"
