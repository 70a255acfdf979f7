"""portal.js in a real browser, under the portal's real CSP: conditional fields, focus after an htmx
swap, the CSRF header. The pages are rendered from base.html and the form macros by the live app
and served on its origin (page.route), so the real scripts, styles and CSP apply."""

from __future__ import annotations

import pytest
from flask import render_template_string

from tests.browser.helpers import (
    axe_violations,
    describe_violations,
    sign_in_browser,
    wait_for_htmx,
)

pytestmark = pytest.mark.browser

FORM_PAGE = """{% extends "base.html" %}
{% from "_partials/forms.html" import date_input %}
{% block content %}
<h1>Bone health assessment</h1>
<form method="post" action="/fixture/save" hx-post="/fixture/save" hx-target="#form-area" novalidate>
  <div id="form-area">
    <div class="nhsuk-form-group">
      <fieldset class="nhsuk-fieldset">
        <legend class="nhsuk-fieldset__legend nhsuk-fieldset__legend--s">DXA scan done</legend>
        <div class="nhsuk-radios" data-module="nhsuk-radios">
          <div class="nhsuk-radios__item">
            <input class="nhsuk-radios__input" id="dxa_done-0" name="dxa_done" type="radio" value="Yes">
            <label class="nhsuk-label nhsuk-radios__label" for="dxa_done-0">Yes</label>
          </div>
          <div class="nhsuk-radios__item">
            <input class="nhsuk-radios__input" id="dxa_done-1" name="dxa_done" type="radio" value="No">
            <label class="nhsuk-label nhsuk-radios__label" for="dxa_done-1">No</label>
          </div>
        </div>
      </fieldset>
    </div>
    <div id="dxa-details" data-show-when="dxa_done=Yes">
      {{ date_input("dxa_date", "Date of DXA scan", {"day": "3", "month": "", "year": "2024"}) }}
    </div>
    <div class="nhsuk-form-group">
      <label class="nhsuk-label" for="bone_therapy">Bone therapy</label>
      <select class="nhsuk-select" id="bone_therapy" name="bone_therapy">
        <option value="">Choose</option>
        <option value="Alendronate">Alendronate</option>
        <option value="Other">Other</option>
      </select>
    </div>
    <div class="nhsuk-form-group" id="other-therapy" data-show-when="bone_therapy=Other|Unknown">
      <label class="nhsuk-label" for="bone_therapy_other">Other bone therapy</label>
      <input class="nhsuk-input" id="bone_therapy_other" name="bone_therapy_other" type="text">
    </div>
    <button class="nhsuk-button" id="save" type="submit">Save</button>
  </div>
</form>
{% endblock %}"""

ERROR_FRAGMENT = """{% from "_partials/forms.html" import date_input, error_summary %}
{{ error_summary([], [("dxa_date-day", "Date of DXA scan must be a real date")]) }}
{{ date_input("dxa_date", "Date of DXA scan", {"day": "31", "month": "2", "year": "2024"},
              ["Date of DXA scan must be a real date"]) }}
<button class="nhsuk-button" id="save" type="submit">Save</button>"""


def _serve(page, live_server, path, template, status=200, headers=None):
    """Answer `path` on the live server's origin with `template` rendered by the live app, with the
    headers (CSP included) the app itself sends."""
    with live_server.app.test_request_context(path):
        html = render_template_string(template)
    real = page.request.get(live_server.url_for("/auth/sign-in"))
    csp = real.headers["content-security-policy"]
    seen = []

    def handler(route):
        seen.append(route.request)
        route.fulfill(
            status=status,
            body=html,
            headers={
                "Content-Type": "text/html; charset=utf-8",
                "Content-Security-Policy": csp,
                **(headers or {}),
            },
        )

    page.route(live_server.url_for(path), handler)
    return seen


def test_conditional_fields_follow_radios_and_selects(page, page_log, live_server):
    _serve(page, live_server, "/fixture/form", FORM_PAGE)
    page.goto("/fixture/form")
    wait_for_htmx(page)

    details, other = page.locator("#dxa-details"), page.locator("#other-therapy")
    assert details.is_hidden() and other.is_hidden()
    # Hidden fields are out of the tab order: from "No" the next stop is the select.
    page.focus("#dxa_done-1")
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.id") == "bone_therapy"

    page.check("#dxa_done-0")
    assert details.is_visible()
    assert page.input_value("#dxa_date-day") == "3"  # what was typed is kept
    page.check("#dxa_done-1")
    assert details.is_hidden()
    assert page.input_value("#dxa_date-year") == "2024"

    page.select_option("#bone_therapy", "Other")
    assert other.is_visible()
    page.select_option("#bone_therapy", "Alendronate")
    assert other.is_hidden()
    assert page_log.problems() == []


def test_error_summary_after_htmx_swap_takes_focus_and_request_has_csrf(
    page, page_log, live_server
):
    user = live_server.make_user("clinician", [live_server.make_service()])
    sign_in_browser(page, live_server, user)
    _serve(page, live_server, "/fixture/form", FORM_PAGE)
    posts = _serve(page, live_server, "/fixture/save", ERROR_FRAGMENT, status=422)
    page.goto("/fixture/form")
    wait_for_htmx(page)
    token = page.get_attribute('meta[name="csrf-token"]', "content")

    page.check("#dxa_done-0")
    page.click("#save")
    page.wait_for_selector(".nhsuk-error-summary")
    wait_for_htmx(page)

    assert posts[0].headers["x-csrftoken"] == token
    assert posts[0].headers["hx-request"] == "true"
    assert page.evaluate("() => document.activeElement.classList.contains('nhsuk-error-summary')")
    # The summary link goes to the day box; every box is marked and keeps what was typed.
    assert page.get_attribute(".nhsuk-error-summary a", "href") == "#dxa_date-day"
    for part, value in (("day", "31"), ("month", "2"), ("year", "2024")):
        box = page.locator(f"#dxa_date-{part}")
        assert "nhsuk-input--error" in box.get_attribute("class")
        assert box.input_value() == value
    violations = axe_violations(page)
    assert violations == [], describe_violations(violations)
    assert page_log.problems() == []
