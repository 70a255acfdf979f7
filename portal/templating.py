"""Template helpers: the current service and navigation, date formats, Vary on htmx."""

from __future__ import annotations

from datetime import date, datetime

from flask import Flask
from flask_login import current_user
from flask_wtf.csrf import generate_csrf

from kpis.dataset import LABELS


def init_app(app: Flask) -> None:
    app.jinja_env.trim_blocks = True
    app.jinja_env.lstrip_blocks = True
    # Globals, not context values, so the form macros' templates are imported without the
    # page's context: Jinja then builds each of them once, not again at every render.
    app.jinja_env.globals["csrf_token_value"] = generate_csrf

    @app.context_processor
    def _globals():
        from portal.access import current_service

        return {
            "current_service": current_service() if current_user.is_authenticated else None,
            "field_label": lambda name: LABELS.get(name, name.replace("_", " ").capitalize()),
        }

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
