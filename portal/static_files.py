"""Static files for a slow ward network (issue 22): fingerprinted names, far-future caching,
pre-compressed files, served by WhiteNoise.

scripts/build-assets.mjs copies every file a page loads into static/dist/ under a name carrying a
hash of its content and writes dist/manifest.json; `python -m whitenoise.compress` puts gzip and
Brotli copies beside them. Here:

- url_for("static", filename="css/portal.css") gives /static/dist/css/portal.<hash>.css, so the
  templates name files as they always did;
- WhiteNoise answers /static/ before Flask does: dist/ files as immutable for a year (a changed
  file has a new name), in the encoding the browser accepts, with no work per request;
- a source edited since the last build is not fingerprinted (its manifest entry would name stale
  content): it is served under its own name, revalidated on every use, until the next build.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from pathlib import Path
from typing import Any

from flask import Flask
from whitenoise import WhiteNoise

log = logging.getLogger(__name__)

MANIFEST = "dist/manifest.json"
# dist/<path>.<12 hex digits>.<suffix>: WhiteNoise marks these immutable, cached for years.
_FINGERPRINTED = re.compile(r"/dist/.+\.[0-9a-f]{12}\.[A-Za-z0-9]+$")


def init_app(app: Flask) -> None:
    static_folder = Path(app.static_folder or "static")
    served, names = fingerprinted_names(static_folder)
    # What pages load (for the service worker's list) and the fingerprinted name of each.
    app.extensions["portal_static_files"] = served

    @app.url_defaults
    def _fingerprinted_static(endpoint: str, values: dict[str, Any]) -> None:
        if endpoint == "static":
            filename = values.get("filename")
            if filename in names:
                values["filename"] = names[filename]

    static_url = (app.static_url_path or "/static").strip("/") + "/"
    # WhiteNoise's documented use with any WSGI app: wrap it. Files outside dist/ (a source
    # edited since the build) are revalidated each time, as Flask served them before.
    app.wsgi_app = WhiteNoise(  # type: ignore[method-assign]
        app.wsgi_app,
        root=str(static_folder),
        prefix=static_url,
        max_age=0,
        allow_all_origins=False,
        immutable_file_test=_is_fingerprinted,
        add_headers_function=_static_headers,
    )


def fingerprinted_names(static_folder: Path) -> tuple[list[str], dict[str, str]]:
    """The files pages load, and source name -> fingerprinted name for those unchanged since the
    last build."""
    try:
        manifest = json.loads((static_folder / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        log.warning("No %s: run scripts/build-assets.mjs; no fingerprinted static files", MANIFEST)
        return [], {}
    served = []
    names = {}
    for name, entry in manifest.items():
        source = static_folder / name
        if not source.is_file():
            continue
        served.append(name)
        if not (static_folder / entry["file"]).is_file():
            continue
        if hashlib.sha256(source.read_bytes()).hexdigest() != entry["source"]:
            log.warning("%s changed since the last asset build: served unfingerprinted", name)
            continue
        names[name] = entry["file"]
    return sorted(served), names


def _is_fingerprinted(path: str, url: str) -> bool:
    return bool(_FINGERPRINTED.search(url))


def _static_headers(headers: Any, path: str, url: str) -> None:
    # The security headers Flask adds to its own answers (security.py): WhiteNoise answers
    # before Flask does, so they are added here.
    from portal.security import SECURITY_HEADERS

    for name, value in SECURITY_HEADERS:
        headers[name] = value
