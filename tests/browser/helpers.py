"""Helpers for browser tests (fixtures are in conftest.py): sign in, wait for htmx, run axe."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
AXE_SCRIPT = ROOT / "node_modules" / "axe-core" / "axe.min.js"
BROWSER_PASSWORD = "correct-horse-battery-9"
IN_CI = os.environ.get("CI") == "true"


def unavailable(reason: str) -> None:
    """Skip loudly on a developer machine; fail in CI, where a skipped browser test hides a gap."""
    if IN_CI:
        pytest.fail(reason)
    pytest.skip(f"BROWSER TESTS NOT RUN: {reason}")


def sign_in_browser(page, server, user, password: str | None = None) -> None:
    """Sign in through the real form (CSRF token and all) and wait for the page after it."""
    page.goto(server.url_for("/auth/sign-in"))
    page.fill("#email", user.email)
    page.fill("#password", password or user.password)
    with page.expect_navigation():
        page.click("form button[type=submit]")
    if page.url.split("?")[0].endswith("/auth/second-factor"):
        import pyotp

        page.fill("#code", pyotp.TOTP(user.totp_secret).now())
        with page.expect_navigation():
            page.click("form button[type=submit]")
    wait_for_htmx(page)


def wait_for_htmx(page, timeout: float = 10_000) -> None:
    """Wait until htmx has loaded and no request, swap or settle is in flight."""
    page.wait_for_load_state("load")
    page.wait_for_function(
        """() => window.htmx !== undefined && document.body !== null &&
              !document.querySelector('.htmx-request, .htmx-swapping, .htmx-settling, .htmx-added')""",
        timeout=timeout,
    )


def axe_violations(page, rules: dict | None = None) -> list[dict]:
    """Run axe-core (node_modules/axe-core) on the page; returns its violations (WCAG 2.2 AA).

    The script goes in through the DevTools protocol, not as an inline <script>, so the page's
    CSP stays as strict as in use.
    """
    if not AXE_SCRIPT.exists():
        unavailable(f"{AXE_SCRIPT} is missing: run `npm ci`")
    if not page.evaluate("() => window.axe !== undefined"):
        page.evaluate(AXE_SCRIPT.read_text(encoding="utf-8"))
    options = {
        "runOnly": {
            "type": "tag",
            "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"],
        },
    }
    if rules:
        options["rules"] = rules
    return page.evaluate(
        "async (options) => (await axe.run(document, options)).violations", options
    )


def describe_violations(violations: list[dict]) -> str:
    """A readable list of axe violations for an assertion message."""
    lines = []
    for violation in violations:
        targets = ", ".join(str(node["target"]) for node in violation["nodes"][:5])
        lines.append(f"{violation['id']} ({violation['impact']}): {violation['help']} at {targets}")
    return "\n".join(lines)


def named_patient_100_days_on(server, service, **episode_values) -> tuple[int, int]:
    """Zoë Brontë (NHS number 999 590 8301, telephone and GP recorded), 100 days after a wrist
    fracture, identified and assessed, DXA recommended, alendronate recommended: waiting for the
    16-week contact. `episode_values` add to the episode. Returns (patient id, episode id)."""
    from datetime import date, timedelta

    from portal import clock
    from portal.extensions import db
    from portal.models import Episode, Patient

    with server.app.app_context():
        fracture = clock.today() - timedelta(days=100)
        patient = Patient(
            service_id=service.id,
            nhs_number="9995908301",
            date_of_birth=date(1944, 3, 2),
            sex="Female",
            given_name="Zoë",
            family_name="Brontë",
            phone="01632 960123",
            gp_practice="Riverside Surgery",
            gp_practice_code="Z99001",
        )
        db.session.add(patient)
        db.session.flush()
        episode = Episode(
            service_id=service.id,
            patient_id=patient.id,
            fracture_date=fracture,
            fracture_sites="Wrist",
            identification_date=fracture,
            assessment_date=fracture + timedelta(days=10),
            dxa_status="Recommended",
            bone_therapy="Alendronate",
            calcium_vitd="Yes",
            **episode_values,
        )
        db.session.add(episode)
        db.session.commit()
        return patient.id, episode.id
