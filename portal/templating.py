"""Template helpers: the current service and navigation, date formats, Vary on htmx."""

from __future__ import annotations

from datetime import date, datetime

from flask import Flask, current_app, g
from flask.templating import Environment
from flask_wtf.csrf import generate_csrf

from kpis.dataset import LABELS
from portal.access import current_service


class PortalEnvironment(Environment):
    """Flask's Jinja environment, whose templates read the globals from a dict of their own.

    Jinja chains each template's globals to the environment's (a ChainMap), so that a global
    added after a template loads still reaches it. Every render then walks that chain key by
    key, twice over for a template that imports macros: 0.28 M instructions of a stage save's
    answer (docs/bench-journey.md). Here every global is registered while the app is set up
    (Flask refuses `add_template_global` once it has served a request, and Jinja asks not to
    change globals after templates load), so a template takes a copy when it loads.
    """

    def __init__(self, app: Flask, **options):
        # The portal has some fifty templates: a plain dict keeps them all, where Jinja's
        # least-recently-used cache (400) takes a lock and reorders a queue at every lookup, and
        # a stage save's answer looks templates up four times.
        options.setdefault("cache_size", -1)
        super().__init__(app, **options)

    def make_globals(self, d):
        return {**self.globals, **(d or {})}


def csrf_token_value() -> str:
    """The CSRF token a form carries: the one this request holds already (made for an earlier
    form, or the one its POST was checked with: signatures.CheckedTokenCSRFProtect), else a new
    one from Flask-WTF, which keeps it in g under its field name. (generate_csrf itself cost a
    form 60,000 instructions even when it only looked the held one up.)"""
    token = g.get(current_app.config.get("WTF_CSRF_FIELD_NAME", "csrf_token"))
    return token if token is not None else generate_csrf()


def field_label(name: str) -> str:
    return LABELS.get(name, name.replace("_", " ").capitalize())


def init_app(app: Flask) -> None:
    app.jinja_env.trim_blocks = True
    app.jinja_env.lstrip_blocks = True
    # Globals, not context values, so the form macros' templates are imported without the
    # page's context: Jinja then builds each of them once, not again at every render.
    app.jinja_env.globals["csrf_token_value"] = csrf_token_value

    # Globals too, not a context processor: a processor runs at every render, a partial's
    # included, and the current service cost a stage save's answer a lookup it never shows.
    app.jinja_env.globals["current_service"] = current_service  # None when signed out
    app.jinja_env.globals["field_label"] = field_label

    @app.template_filter("uk_date")
    def uk_date(value: date | datetime | None) -> str:
        """Dates as NHS staff read them: 12 March 2024."""
        if value is None:
            return ""
        return f"{value.day} {value.strftime('%B %Y')}"

    @app.template_filter("uk_datetime")
    def uk_datetime(value: datetime | None) -> str:
        if value is None:
            return ""
        return f"{value.day} {value.strftime('%B %Y, %H:%M')}"
