"""Extensions are created here and bound to the app in create_app."""

from __future__ import annotations

from functools import partial
from typing import Any

from flask import Flask
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from htmx_flask import Htmx

from portal.models.base import Base
from portal.signatures import CheckedTokenCSRFProtect

db = SQLAlchemy(model_class=Base)
migrate = Migrate()
login_manager = LoginManager()
csrf = CheckedTokenCSRFProtect()  # Flask-WTF's, each token checked once (signatures.py)
htmx = Htmx()
limiter = Limiter(key_func=get_remote_address, default_limits=[])

# Rate limits are set on the routes that need them (security.md: per-address limits on sign-in
# and the second factor), all in the auth blueprint, none on the whole application; uploads count
# theirs in security.py. Flask-Limiter hooks every request of the app; confine_limiter moves its
# hooks to that blueprint, where they find something to count. Elsewhere they found nothing but
# cost a stage save 0.3 M instructions, even skipped by a request filter (docs/bench-journey.md).
# tests/security/test_rate_limits.py holds the portal to this.
RATE_LIMITED_BLUEPRINT = "auth"


def confine_limiter(app: Flask) -> None:
    """Run the limiter's before, after and teardown hooks for the rate-limited blueprint only.

    Called once, right after limiter.init_app (which registers no hooks when RATELIMIT_ENABLED
    is off). Fails at start-up if Flask-Limiter registers its hooks otherwise than one of each
    (a new version): the limits would then go unchecked.
    """
    moved = 0
    for hooks in (app.before_request_funcs, app.after_request_funcs, app.teardown_request_funcs):
        mine = [hook for hook in hooks.get(None, []) if _belongs_to_limiter(hook)]
        for hook in mine:
            hooks[None].remove(hook)
            hooks.setdefault(RATE_LIMITED_BLUEPRINT, []).append(hook)
        moved += len(mine)
    if moved != (3 if app.config.get("RATELIMIT_ENABLED", True) else 0):
        raise RuntimeError(f"expected Flask-Limiter's three request hooks, found {moved}")


def _belongs_to_limiter(hook: Any) -> bool:
    owner = (
        hook.args[0] if isinstance(hook, partial) and hook.args else getattr(hook, "__self__", None)
    )
    return owner is limiter
