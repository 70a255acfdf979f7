"""Issue 18 with the device's outbox (spec/offline.md): a save sent from the outbox that brings an
unusual date is refused (422) until the nurse confirms it, so it waits on "Waiting on this device"
as needing attention, with the reason; opened, it shows the warning, and once confirmed it is
saved, once."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from tests.browser.test_offline_forms import (  # noqa: F401 (fixtures)
    alice_on_new_episode,
    browser,
    context,
    fill_date,
    ready,
    server,
    settle,
    status,
)

pytestmark = pytest.mark.browser


def test_an_unusual_date_from_the_outbox_waits_for_the_nurses_confirmation(context, server):  # noqa: F811
    page, episode = alice_on_new_episode(context)
    fracture = date.fromisoformat(
        str(server.scalar("SELECT fracture_date FROM episodes WHERE id = :id", id=episode))
    )
    assessment = page.locator("form[data-offline-form$='-assessment']")
    fill_date(page, "assessment_date", fracture + timedelta(days=5))
    assessment.locator("button[type=submit]").click()
    settle(page)
    page.locator("#stage-assessment .portal-saved").wait_for()

    context.set_offline(True)
    fill_date(page, "identification_date", fracture + timedelta(days=10))
    page.locator("#stage-identification-save").click()
    page.locator("[data-offline-notice=saved]").wait_for()

    context.set_offline(False)
    page.goto(f"/episodes/{episode}")
    ready(page)
    page.wait_for_function(
        "() => document.getElementById('connection-status').dataset.attention === '1'",
        timeout=30000,
    )
    page.goto("/waiting")
    ready(page)
    row = page.locator("[data-offline-item]")
    row.wait_for()
    assert row.get_attribute("data-state") == "attention"
    assert "Unusual dates" in row.inner_text()
    assert "after the FLS assessment" in row.inner_text()
    saved_date = server.scalar(
        "SELECT identification_date FROM episodes WHERE id = :id", id=episode
    )
    assert str(saved_date) != str(fracture + timedelta(days=10))

    row.locator("[data-offline-open]").click()
    page.wait_for_url(f"**/episodes/{episode}*")
    ready(page)
    page.locator("#confirm_dates").wait_for()
    page.check("#confirm_dates")
    page.locator("#stage-identification-save").click()
    settle(page)
    page.locator("#stage-identification .portal-saved").wait_for()
    saved_date = server.scalar(
        "SELECT identification_date FROM episodes WHERE id = :id", id=episode
    )
    assert str(saved_date) == str(fracture + timedelta(days=10))
    confirmed = server.scalar(
        "SELECT count(*) FROM audit_events WHERE entity_type = 'episode' AND entity_id = :id "
        "AND changes LIKE '%_unusual_dates_confirmed%'",
        id=episode,
    )
    assert confirmed == 1
    assert status(page)["waiting"] == "0"
