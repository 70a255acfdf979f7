"""The NHS.UK form macros (_partials/forms.html) produce nhsuk-frontend 10 markup: errors beside
the field and in the summary, linked to something focusable, described by hint and error."""

from __future__ import annotations

import re

import pytest
from flask import render_template_string
from werkzeug.datastructures import MultiDict
from wtforms import Form, RadioField, SelectChoice, SelectMultipleField, StringField
from wtforms.validators import DataRequired, InputRequired
from wtforms.widgets import CheckboxInput, ListWidget


class _Checkboxes(SelectMultipleField):
    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


class AssessmentForm(Form):
    nhs_number = StringField(
        "NHS number", description="10 digits", validators=[DataRequired("Enter the NHS number")]
    )
    dxa_done = RadioField(
        "DXA scan done",
        choices=[SelectChoice("Yes"), SelectChoice("No")],
        validators=[InputRequired("Say whether a DXA scan was done")],
    )
    fracture_sites = _Checkboxes(
        "Fracture sites",
        choices=[SelectChoice("Hip"), SelectChoice("Wrist")],
        validators=[DataRequired("Choose at least one fracture site")],
    )


PAGE = """{% from "_partials/forms.html" import error_summary, input, radios, checkboxes %}
{{ error_summary([form]) }}{{ input(form.nhs_number, width=10, inputmode="numeric") }}
{{ radios(form.dxa_done, inline=True) }}{{ checkboxes(form.fracture_sites) }}"""


@pytest.fixture
def invalid_form(app):
    with app.test_request_context():
        form = AssessmentForm(MultiDict())
        assert not form.validate()
        yield form


def _render(template: str, **context) -> str:
    return render_template_string(template, **context)


def test_error_summary_links_each_error_to_a_focusable_control(app, invalid_form):
    with app.test_request_context():
        html = _render(PAGE, form=invalid_form)
    summary = html[html.index('class="nhsuk-error-summary"') : html.index("</ul>")]
    assert 'data-module="nhsuk-error-summary"' in summary
    assert "data-focus-on-load" in summary
    assert '<h2 class="nhsuk-error-summary__heading">There is a problem</h2>' in summary
    links = re.findall(r'<a href="#([^"]+)">([^<]+)</a>', summary)
    # Radio and checkbox groups link to their first option, which the browser can focus.
    assert links == [
        ("nhs_number", "Enter the NHS number"),
        ("dxa_done-0", "Say whether a DXA scan was done"),
        ("fracture_sites-0", "Choose at least one fracture site"),
    ]
    for target, _ in links:
        assert f'id="{target}"' in html


def test_fields_carry_error_and_hint_the_nhsuk_way(app, invalid_form):
    with app.test_request_context():
        html = _render(PAGE, form=invalid_form)
    field = re.search(r"<input[^>]*id=\"nhs_number\"[^>]*>", html).group(0)
    assert 'class="nhsuk-input nhsuk-input--error nhsuk-input--width-10"' in field
    assert 'aria-describedby="nhs_number-hint nhs_number-error"' in field
    assert 'inputmode="numeric"' in field
    assert (
        '<span class="nhsuk-error-message" id="nhs_number-error">'
        '<span class="nhsuk-u-visually-hidden">Error: </span>Enter the NHS number</span>'
    ) in html
    assert html.count("nhsuk-form-group--error") == 3
    assert 'aria-describedby="dxa_done-error"' in html
    assert 'class="nhsuk-radios nhsuk-radios--inline" data-module="nhsuk-radios"' in html
    assert 'class="nhsuk-checkboxes" data-module="nhsuk-checkboxes"' in html


def test_no_error_summary_when_the_form_is_fine(app):
    with app.test_request_context():
        form = AssessmentForm(
            MultiDict({"nhs_number": "9434765919", "dxa_done": "No", "fracture_sites": "Hip"})
        )
        assert form.validate()
        html = _render(PAGE, form=form)
    assert "nhsuk-error-summary" not in html
    assert "nhsuk-form-group--error" not in html
    field = re.search(r"<input[^>]*id=\"nhs_number\"[^>]*>", html).group(0)
    assert 'aria-describedby="nhs_number-hint"' in field  # the hint alone


DATE = """{% from "_partials/forms.html" import date_input %}
{{ date_input("fracture_date", "Date of fracture", values, errors, hint=hint, error_parts=parts) }}"""


def test_date_input_keeps_what_was_typed_and_marks_the_wrong_part(app):
    with app.test_request_context():
        html = _render(
            DATE,
            values={"day": "31", "month": "2", "year": "2024"},
            errors=["Date of fracture must be a real date"],
            hint="For example, 15 3 2024",
            parts=["day"],
        )
    assert 'class="nhsuk-form-group nhsuk-form-group--error"' in html
    assert 'role="group" aria-describedby="fracture_date-hint fracture_date-error"' in html
    assert '<div class="nhsuk-date-input" id="fracture_date">' in html
    boxes = {
        part: classes
        for classes, part in re.findall(r'<input class="([^"]+)" id="fracture_date-(\w+)"', html)
    }
    assert "nhsuk-input--error" in boxes["day"]
    assert "nhsuk-input--error" not in boxes["month"]
    assert "nhsuk-input--width-4" in boxes["year"]
    for part, value in (("day", "31"), ("month", "2"), ("year", "2024")):
        assert re.search(
            rf'name="fracture_date-{part}" type="text" inputmode="numeric" '
            rf'autocomplete="off" value="{value}"',
            html,
        )


def test_date_input_without_errors_or_values(app):
    with app.test_request_context():
        html = _render(DATE, values=None, errors=None, hint=None, parts=None)
    assert "nhsuk-form-group--error" not in html
    assert "nhsuk-input--error" not in html
    assert "aria-describedby" not in html
    assert html.count('value=""') == 3


def test_date_input_escapes_what_was_typed(app):
    with app.test_request_context():
        html = _render(
            DATE,
            values={"day": '"><script>', "month": None, "year": ""},
            errors=["Bad"],
            hint=None,
            parts=None,
        )
    assert "<script>" not in html
    assert html.count("nhsuk-input--error") == 3


def test_hidden_state_and_status_tag_escape_what_they_print(app):
    """The hidden inputs of every save form and the status tag (template globals, templating.py)
    escape what they print as autoescaping would."""
    from flask_wtf.csrf import generate_csrf

    from portal.templating import hidden_state, status_tag

    with app.test_request_context():
        state = hidden_state(7)
        assert f'name="csrf_token" value="{generate_csrf()}"' in state
        assert re.search(r'name="submission_id" value="[0-9a-f-]{36}"', state)
        assert 'name="version" value="7"' in state
        assert 'name="version" value=""' in hidden_state(None)
        assert hidden_state(None) != hidden_state(None)  # a fresh submission id each form
        tag = status_tag("in progress")
        assert (
            tag == '<strong class="portal-status portal-status--in-progress">In progress</strong>\n'
        )
        assert "&lt;b&gt;" in status_tag("<b>")


def test_times_are_shown_in_london_time_summer_time_included():
    from datetime import datetime

    from portal.templating import uk_datetime

    assert uk_datetime(datetime(2026, 7, 1, 13, 5)) == "1 July 2026, 14:05"  # BST
    assert uk_datetime(datetime(2026, 12, 1, 13, 5)) == "1 December 2026, 13:05"  # GMT
    assert uk_datetime(datetime(2026, 6, 30, 23, 30)) == "1 July 2026, 00:30"
    assert uk_datetime(None) == ""
