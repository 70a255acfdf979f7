"""Extensions are created here and bound to the app in create_app."""

from __future__ import annotations

from typing import Any, cast

from flask_compress import Compress
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect
from htmx_flask import Htmx
from sqlalchemy import CursorResult
from sqlalchemy.sql import Executable

from portal.models.base import Base

# What a request has just written is what its answer shows: committing does not make the page
# read every record again (the session is the request's alone, and ends with it).
db = SQLAlchemy(model_class=Base, session_options={"expire_on_commit": False})
migrate = Migrate()
login_manager = LoginManager()
csrf = CSRFProtect()
htmx = Htmx()
# HTML answers compressed as they leave (issue 22: a ward's slow network); static files are
# compressed at build time instead (portal/static_files.py). BREACH: docs/security.md.
compress = Compress()
# Limits are declared on the routes that need them (security.md: sign-in, the second factor,
# uploads); none applies to the whole application.
limiter = Limiter(key_func=get_remote_address, default_limits=[])


def rows_changed(statement: Executable) -> int:
    """Run an UPDATE or DELETE in the request's session; returns how many rows it changed (what
    a conditional UPDATE's caller reads to know whether it was the one that changed the row)."""
    return cast("CursorResult[Any]", db.session.execute(statement)).rowcount
