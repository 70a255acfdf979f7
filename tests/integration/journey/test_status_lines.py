"""Issue 22: a stage's status line tells the truth as of today: due, due now or overdue while the
thing is waited for, and never "overdue" once it is done."""

from __future__ import annotations

import html as html_module
import re
from datetime import timedelta

from tests.conftest import TEST_TODAY

from .conftest import nhs_number
from .test_stages import post_stage, stage_answers

FRACTURE = TEST_TODAY - timedelta(days=400)  # past day 90 and both follow-up windows


def _shown(day) -> str:
    return f"{day.day} {day.strftime('%B %Y')}"


def _timing(page: str, stage: str) -> str:
    section = page[page.index(f'id="stage-{stage}"') :]
    match = re.search(r'<p class="nhsuk-body-s portal-stage-timing">(.*?)</p>', section[:3000])
    return html_module.unescape(match.group(1)) if match else ""


def test_overdue_lines_while_waiting_become_done_lines_once_saved(editor, register, db):
    client, _, _ = editor
    episode = register(nhs_number(40), FRACTURE)
    page = client.get(f"/episodes/{episode.id}").get_data(as_text=True)
    day90 = FRACTURE + timedelta(days=90)
    assert _timing(page, "assessment") == (
        f"The FLS assessment is overdue: it was due by day 90, {_shown(day90)}."
    )
    assert _timing(page, "followup16").startswith("The 12-16 week contact is overdue")
    assert _timing(page, "followup52").startswith("The 12 month follow-up is overdue")

    for stage in ("assessment", "treatment", "followup16", "followup52"):
        db.session.refresh(episode)
        assert post_stage(client, episode, stage, stage_answers(stage, FRACTURE)).status_code == 200
    page = client.get(f"/episodes/{episode.id}").get_data(as_text=True)
    for stage in ("assessment", "followup16", "followup52"):
        assert "overdue" not in _timing(page, stage)
    assert _timing(page, "assessment") == (
        f"FLS assessment done on {_shown(FRACTURE + timedelta(days=20))}. "
        f"DXA done on {_shown(FRACTURE + timedelta(days=40))}."
    )
    assert _timing(page, "followup16") == (
        f"The 12-16 week contact was made on {_shown(FRACTURE + timedelta(days=100))}."
    )
    assert _timing(page, "followup52") == (
        f"The 12 month follow-up was made on {_shown(FRACTURE + timedelta(days=360))}."
    )


def test_assessment_done_but_dxa_waited_for(editor, register, db):
    client, _, _ = editor
    episode = register(nhs_number(41), FRACTURE)
    answers = stage_answers("assessment", FRACTURE)
    answers.setlist("dxa_date-day", [""])
    answers.setlist("dxa_date-month", [""])
    answers.setlist("dxa_date-year", [""])
    answers.setlist("t_score", [""])
    response = post_stage(client, episode, "assessment", answers)
    assert response.status_code == 200
    line = _timing(response.get_data(as_text=True), "assessment")
    assert line.startswith(f"FLS assessment done on {_shown(FRACTURE + timedelta(days=20))}.")
    assert "The DXA is overdue" in line and "FLS assessment is overdue" not in line


def test_windows_still_ahead_say_due_not_overdue(editor, register):
    client, _, _ = editor
    fracture = TEST_TODAY - timedelta(days=10)
    episode = register(nhs_number(42), fracture)
    page = client.get(f"/episodes/{episode.id}").get_data(as_text=True)
    assert _timing(page, "assessment") == (
        f"The FLS assessment is due by day 90: {_shown(fracture + timedelta(days=90))}."
    )
    assert _timing(page, "followup16") == (
        f"The 12-16 week contact is due from {_shown(fracture + timedelta(days=84))} "
        f"to {_shown(fracture + timedelta(days=112))}."
    )
    assert _timing(page, "followup52").startswith("The 12 month follow-up is due from")
