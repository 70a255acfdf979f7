"""The import and export page in a real browser: upload, progress bar polled by htmx in the
background, preview, apply, refusals, and the export download."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.browser.helpers import (
    axe_violations,
    describe_violations,
    sign_in_browser,
    wait_for_htmx,
)
from tests.records_csv import csv_text, nhs_number, row

pytestmark = pytest.mark.browser


def _file(tmp_path: Path, rows: int, bad_line: int | None = None) -> Path:
    cells = []
    for number in range(2, rows + 2):
        values = {"service_code": "XMP", "nhs_number": nhs_number(number)}
        if number == bad_line:
            values["sex"] = "<b>Nobody</b>"
        cells.append(row(**values))
    path = tmp_path / "episodes.csv"
    columns = (*row().keys(), "<b>Ward</b>")  # an unknown column, named in markup
    path.write_text(csv_text(cells, columns=columns), encoding="utf-8")
    return path


def _wait_for_preview(page) -> None:
    page.wait_for_selector(
        "#preview-heading, #import-result, .nhsuk-error-summary", timeout=120_000
    )
    wait_for_htmx(page)


def test_upload_progress_preview_apply_and_export(page, live_server, page_log, tmp_path):
    live_server.make_service("XMP")
    lead = live_server.make_user("lead", services=["XMP"])
    sign_in_browser(page, live_server, lead)
    polls: list[dict] = []
    page.on(
        "request",
        lambda request: polls.append(request.headers) if "/progress" in request.url else None,
    )

    page.click("text=Import and export")
    violations = axe_violations(page)
    assert not violations, describe_violations(violations)
    page.set_input_files("#file", str(_file(tmp_path, 3000)))
    with page.expect_navigation():
        page.click("text=Check the file")
    # The job page opens at once with a progress bar while a queue worker checks the rows.
    progress = page.locator("progress#import-progress")
    assert progress.count() == 1
    assert progress.get_attribute("max") == "3000"
    _wait_for_preview(page)
    assert page.locator("#count-added").inner_text() == "3000"
    assert "Nothing has been written yet" in page.content()
    assert polls, "the page never polled for progress"
    assert all(h.get("x-background-request") == "1" for h in polls)
    assert all(h.get("hx-request") == "true" for h in polls)

    with page.expect_navigation():
        page.click("#apply-import")
    page.wait_for_selector("#import-result", timeout=120_000)
    assert "Added 3000, updated 0, unchanged 0, refused 0." in page.inner_text("#import-result")

    page.click("text=Import and export")
    with page.expect_download() as download_info:
        page.click("text=Export episodes as CSV")
    exported = Path(download_info.value.path()).read_text(encoding="utf-8").splitlines()
    assert exported[0].startswith("service_code,nhs_number,date_of_birth,")
    assert len(exported) == 3001
    assert page_log.csp_violations == []
    assert page_log.page_errors == []


def test_refused_row_is_shown_escaped_and_valid_rows_can_be_kept(
    page, live_server, page_log, tmp_path
):
    live_server.make_service("XMP")
    clinician = live_server.make_user("clinician", services=["XMP"])
    sign_in_browser(page, live_server, clinician)
    page.goto(live_server.url_for("/records/"))
    assert page.locator("text=Export episodes as CSV").count() == 0  # a lead's
    page.set_input_files("#file", str(_file(tmp_path, 5, bad_line=4)))
    with page.expect_navigation():
        page.click("text=Check the file")
    _wait_for_preview(page)
    refusal = page.locator("#refusals tbody tr").first
    assert refusal.locator("td").nth(0).inner_text() == "4"
    assert refusal.locator("td").nth(1).inner_text() == "sex"
    # The unknown column is listed as text, never as markup.
    assert page.inner_text("#unknown-columns") == "<b>Ward</b>"
    assert page.locator("#unknown-columns b").count() == 0
    assert page.locator("#count-added").inner_text() == "4"
    violations = axe_violations(page)
    assert not violations, describe_violations(violations)

    page.check("text=Import the rows that pass and leave out the refused ones")
    with page.expect_navigation():
        page.click("#apply-import")
    page.wait_for_selector("#import-result", timeout=60_000)
    assert "Added 4, updated 0, unchanged 0, refused 1." in page.inner_text("#import-result")
    assert page_log.csp_violations == []
