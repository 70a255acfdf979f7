"""Issue 22: the audit trail shows values as users typed or chose them, with the form's label."""

from __future__ import annotations

import pytest

from portal.templating import audit_field_label, audit_value


@pytest.mark.parametrize(
    ("value", "name", "shown"),
    [
        (True, "active", "Yes"),
        (False, "active", "No"),
        (None, "smoker", "(empty)"),
        ("", "smoker", "(empty)"),
        ("2026-09-15", "fracture_date", "15 September 2026"),
        ("Wrist;Hip", "fracture_sites", "Wrist, Hip"),
        ("9995908301", "nhs_number", "999 590 8301"),
        ("Not known", "smoker", "Not known"),
        (162, "height_cm", "162"),
        (["BRD", "NTH"], "services", "BRD, NTH"),
        ("2026-02-30", "note", "2026-02-30"),
    ],
)
def test_values_read_as_they_were_typed(value, name, shown):
    assert audit_value(value, name) == shown


def test_fields_carry_their_form_labels():
    from kpis import dataset as ds

    assert audit_field_label("fracture_date") == ds.LABELS["fracture_date"]
    assert audit_field_label("_version") == "Version of the record"
    assert audit_field_label("active") == "Active"
    assert "_" not in audit_field_label("some_new_field")
