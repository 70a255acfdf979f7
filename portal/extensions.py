"""Extensions are created here and bound to the app in create_app."""

from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect
from htmx_flask import Htmx

from portal.models.base import Base

db = SQLAlchemy(model_class=Base)
migrate = Migrate()
login_manager = LoginManager()
csrf = CSRFProtect()
htmx = Htmx()
limiter = Limiter(key_func=get_remote_address, default_limits=[])

# Rate limits are set on the routes that need them (security.md: per-address limits on sign-in
# and the second factor), all in the auth blueprint, none on the whole application; uploads count
# theirs in security.py. The limiter's check before every request is skipped outside that
# blueprint, where it found nothing to count but cost a stage save 0.19 M instructions
# (docs/bench-journey.md). tests/security/test_rate_limits.py holds the portal to this.
RATE_LIMITED_BLUEPRINT = "auth"


@limiter.request_filter
def _outside_rate_limited_routes() -> bool:
    from flask import request

    return request.blueprint != RATE_LIMITED_BLUEPRINT
