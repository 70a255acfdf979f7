"""The server's part of offline-tolerant forms (spec/offline.md).

- `/device-key`: the signed-in user's AES-GCM key for drafts and waiting submissions, never cached.
- `/waiting`: "Waiting on this device", a shell with no patient data that the offline script
  (static/js/offline/, built into static/vendor/offline.js) fills in from IndexedDB.
- `/offline`: what the service worker shows when a page that needs the network is opened offline.
- `/sw.js`: the service worker, served from the root so that its scope is the whole portal.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Response,
    current_app,
    jsonify,
    render_template,
    request,
    url_for,
)
from flask_login import current_user
from flask_wtf.csrf import CSRFError

from portal.offline import device_keys
from portal.security import is_htmx

bp = Blueprint("offline", __name__)

# Blank forms (no patient data in them) that the service worker may keep for use offline: the
# endpoints of the new-patient registration form, as the journey blueprint names it. An endpoint
# that does not exist in this app is left out.
BLANK_FORM_ENDPOINTS = ("journey.register_patient",)

# Static files the service worker keeps: the ones pages load (portal/static_files.py), under their
# fingerprinted names. Not the offline script's sources: pages load their bundle, vendor/offline.js.
_PRECACHED_SUFFIXES = (".js", ".css", ".svg", ".png", ".ico")


@bp.get("/device-key")
def device_key():
    """The signed-in user's device key (raw AES-256 key, base64url); only ever to that user."""
    key = device_keys.device_key(
        current_user._get_current_object(), current_app.config["SECRET_KEY"]
    )
    response = jsonify(
        user=key.user_id,
        generation=key.generation,
        key=base64.urlsafe_b64encode(key.key).decode().rstrip("="),
    )
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response


@bp.get("/waiting")
def waiting():
    """The list of drafts and waiting submissions kept on this device (filled by the script)."""
    return render_template("offline/waiting.html")


@bp.get("/offline")
def offline_page():
    """Shown by the service worker for a page that needs the network while offline. Public and
    anonymous (the service worker fetches it without cookies), so it holds nothing of anyone."""
    return render_template("offline/offline.html")


@bp.get("/sw.js")
def service_worker():
    """The service worker script with this release's cache version and file lists."""
    static_folder = Path(current_app.static_folder or "static")
    script = (static_folder / "js" / "sw.js").read_text(encoding="utf-8")
    assets = _precached_urls()
    # A new release changes a file's fingerprint or the worker itself, and so the cache version.
    digest = hashlib.sha256(script.encode())
    for url in assets:
        digest.update(url.encode())
    settings = {
        "version": digest.hexdigest()[:16],
        "assets": assets,
        "blankForms": _blank_form_urls(),
        "offlinePage": url_for("offline.offline_page"),
    }
    body = f"const PORTAL_SW = {json.dumps(settings)};\n{script}"
    response = Response(body, mimetype="text/javascript")
    # Browsers check for a new worker at each navigation; the script itself is never kept stale.
    response.headers["Cache-Control"] = "no-cache"
    response.headers["Service-Worker-Allowed"] = "/"
    return response


# Issue 22: what a refused form says, in plain words (Flask-WTF's own reason, "The CSRF session
# token is missing.", never reaches anyone).
SESSION_ENDED = (
    "Your session has ended, so this form was not sent. What you typed is kept on this device: "
    "sign in again and it is sent from here."
)
FORM_EXPIRED = "The form had expired. It is being sent again with a fresh one."


@bp.app_errorhandler(CSRFError)
def csrf_refused(error: CSRFError):
    """A missing or expired CSRF token. Without a signed-in session the session has ended (signed
    out in another tab, or timed out): scripts get 401 as for any signed-out request, and the
    offline script keeps the submission and asks the user to sign in (offline.md). With one, the
    token had expired: the offline script fetches a fresh token and sends it again."""
    signed_in = current_user.is_authenticated
    if is_htmx() or request.accept_mimetypes.best == "application/json":
        if not signed_in:
            response = jsonify(
                error="signed_out", reason=SESSION_ENDED, sign_in=url_for("auth.sign_in")
            )
            response.status_code = 401
            return response
        response = jsonify(error="csrf", reason=FORM_EXPIRED)
        response.status_code = 400
        return response
    if not signed_in:
        # A form sent without the page's scripts is not kept anywhere, so this says what to do.
        return (
            render_template(
                "errors/session_ended.html",
                sign_in=url_for("auth.sign_in", next=_same_site_path(request.referrer)),
            ),
            400,
        )
    return (
        render_template(
            "errors/error.html",
            status=400,
            title="The form had expired",
            description="Go back, reload the page and fill in the form again.",
        ),
        400,
    )


def _same_site_path(referrer: str | None) -> str | None:
    """The path of the page the form was on, when it is one of ours (never another site)."""
    if not referrer:
        return None
    parts = urlsplit(referrer)
    if parts.netloc and parts.netloc != request.host:
        return None
    if not parts.path.startswith("/") or parts.path.startswith("//"):
        return None
    return parts.path


def _blank_form_urls() -> list[str]:
    urls = []
    for endpoint in BLANK_FORM_ENDPOINTS:
        if endpoint not in current_app.view_functions:
            continue
        rules = [r for r in current_app.url_map.iter_rules(endpoint) if not r.arguments]
        if rules and "GET" in (rules[0].methods or ()):
            urls.append(url_for(endpoint))
    return urls


def _precached_urls() -> list[str]:
    """The URLs of the static files pages load: fingerprinted where the build is current."""
    served = current_app.extensions.get("portal_static_files") or []
    return [
        url_for("static", filename=name) for name in served if name.endswith(_PRECACHED_SUFFIXES)
    ]
