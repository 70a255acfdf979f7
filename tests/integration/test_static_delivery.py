"""Static files and pages on a slow ward network (issue 22): fingerprinted names cached for
years, pre-compressed files, compressed pages, nothing stale after a change."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from portal import static_files

STATIC = Path(__file__).resolve().parents[2] / "portal" / "static"

if not (STATIC / static_files.MANIFEST).is_file():  # pragma: no cover - depends on the build
    reason = "LOUD: portal/static/dist/ is not built: run `node scripts/build-assets.mjs`"
    if os.environ.get("CI") == "true":
        raise RuntimeError(reason)
    pytestmark = pytest.mark.skip(reason=reason)

FINGERPRINT = re.compile(r"^/static/dist/(.+)\.[0-9a-f]{12}(\.\w+)$")


def _static_urls(html: str) -> list[str]:
    return re.findall(r'(?:href|src)="(/static/[^"]+)"', html)


def _fetch(client, url: str, encoding: str = "identity"):
    """The answer read in full and closed (WhiteNoise hands the test client an open file)."""
    response = client.get(url, headers={"Accept-Encoding": encoding})
    response.get_data()
    response.close()
    return response


def test_pages_name_every_static_file_by_its_fingerprint(client):
    html = client.get("/auth/sign-in").get_data(as_text=True)
    urls = _static_urls(html)
    assert len(urls) >= 8
    for url in urls:
        assert FINGERPRINT.match(url), url
    sources = {"".join(FINGERPRINT.match(url).groups()) for url in urls}
    assert {"vendor/nhsuk.css", "css/portal.css", "vendor/htmx.min.js"} <= sources


@pytest.mark.parametrize("encoding", ["br", "gzip"])
def test_fingerprinted_files_are_immutable_and_sent_compressed(client, encoding):
    html = client.get("/auth/sign-in").get_data(as_text=True)
    for url in _static_urls(html):
        if url.endswith((".png", ".ico")):
            continue
        response = _fetch(client, url, encoding)
        assert response.status_code == 200, url
        assert response.headers["Cache-Control"].endswith("public, immutable"), url
        max_age = int(re.search(r"max-age=(\d+)", response.headers["Cache-Control"]).group(1))
        assert max_age >= 365 * 24 * 3600
        assert response.headers["Content-Encoding"] == encoding, url
        assert "Accept-Encoding" in response.headers["Vary"]
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert "Access-Control-Allow-Origin" not in response.headers
        plain = _fetch(client, url)
        assert "Content-Encoding" not in plain.headers
        assert int(response.headers["Content-Length"]) < len(plain.data)


def test_the_stylesheet_names_its_images_by_fingerprint_too(client):
    html = client.get("/auth/sign-in").get_data(as_text=True)
    css_url = next(url for url in _static_urls(html) if "/vendor/nhsuk." in url)
    css = _fetch(client, css_url).get_data(as_text=True)
    images = set(re.findall(r'url\("?(assets/images/[^")]+)"?\)', css))
    assert images
    for image in images:
        assert re.search(r"\.[0-9a-f]{12}\.svg$", image), image
        response = _fetch(client, css_url.rsplit("/", 1)[0] + "/" + image)
        assert response.status_code == 200
        assert "immutable" in response.headers["Cache-Control"]


def test_only_the_nhsuk_components_the_portal_uses_are_sent(client):
    html = client.get("/auth/sign-in").get_data(as_text=True)
    css_url = next(url for url in _static_urls(html) if "/vendor/nhsuk." in url)
    css = _fetch(client, css_url).get_data(as_text=True)
    assert ".nhsuk-summary-list" in css and ".nhsuk-header" in css
    for unused in (".nhsuk-hero", ".nhsuk-task-list", ".nhsuk-do-dont-list", ".nhsuk-tabs"):
        assert unused not in css
    script_url = next(url for url in _static_urls(html) if "/vendor/nhsuk-init." in url)
    script = _fetch(client, script_url).get_data(as_text=True)
    assert "nhsuk-header" in script
    assert "nhsuk-tabs" not in script and "nhsuk-character-count" not in script


def test_a_source_edited_after_the_build_is_served_fresh_not_fingerprinted(tmp_path):
    (tmp_path / "css").mkdir()
    (tmp_path / "dist" / "css").mkdir(parents=True)
    (tmp_path / "css" / "portal.css").write_text("body { color: red }")
    (tmp_path / "dist" / "css" / "portal.0123456789ab.css").write_text("body { color: blue }")
    (tmp_path / "dist" / "manifest.json").write_text(
        '{"css/portal.css": {"file": "dist/css/portal.0123456789ab.css", "source": "stale"}}'
    )
    served, names = static_files.fingerprinted_names(tmp_path)
    assert served == ["css/portal.css"]
    assert names == {}


def test_pages_are_compressed_for_browsers_that_accept_it(signed_in):
    client, _user, _service = signed_in()
    page = client.get("/", headers={"Accept-Encoding": "gzip, deflate, br"})
    assert page.status_code == 200
    assert page.headers["Content-Encoding"] == "br"
    assert "Accept-Encoding" in page.headers["Vary"]
    assert page.headers["Cache-Control"] == "no-store"
    plain = client.get("/", headers={"Accept-Encoding": "identity"})
    assert "Content-Encoding" not in plain.headers
    assert b"<!DOCTYPE html>" in plain.data
