"""Settings from the environment; the instance folder keeps the secret key and the SQLite file."""

from __future__ import annotations

import os
import secrets
from datetime import timedelta
from pathlib import Path


def _secret_key(instance_path: str) -> str:
    """SECRET_KEY from the environment, else one made once and kept in the instance folder."""
    if os.environ.get("SECRET_KEY"):
        return os.environ["SECRET_KEY"]
    path = Path(instance_path) / "secret_key"
    if not path.exists():
        from portal.files import open_private

        path.parent.mkdir(parents=True, exist_ok=True)
        with open_private(path) as secret:
            secret.write(secrets.token_hex(32).encode())
    return path.read_text().strip()


def _int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def from_environment(instance_path: str) -> dict:
    database_url = os.environ.get("DATABASE_URL") or (
        "sqlite:///" + str(Path(instance_path) / "portal.db")
    )
    production = os.environ.get("PORTAL_ENV", "development") == "production"
    return {
        "SECRET_KEY": _secret_key(instance_path),
        "SQLALCHEMY_DATABASE_URI": database_url,
        "REDIS_URL": os.environ.get("REDIS_URL"),
        # PostgreSQL reached through a PgBouncer in transaction pooling (README, "Production").
        "DATABASE_TRANSACTION_POOLING": os.environ.get("DATABASE_TRANSACTION_POOLING", "").lower()
        in ("1", "true", "yes"),
        # PostgreSQL's JIT compilation of large queries: off unless asked for (README, "Production").
        "DATABASE_JIT": os.environ.get("DATABASE_JIT", "").lower() in ("1", "true", "yes", "on"),
        # `__Host-` (security.md): the browser keeps it only if Secure, for Path=/ and with no
        # Domain, so no other host or path can plant or read it.
        "SESSION_COOKIE_NAME": "__Host-fls-session" if production else "session",
        "SESSION_COOKIE_PATH": "/",
        "SESSION_COOKIE_DOMAIN": None,
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": production,
        "REMEMBER_COOKIE_SECURE": production,
        "PREFERRED_URL_SCHEME": "https" if production else "http",
        "PORTAL_PRODUCTION": production,
        # Sessions (security.md): idle and absolute limits.
        "IDLE_TIMEOUT": timedelta(minutes=_int("IDLE_TIMEOUT_MINUTES", 30)),
        "ABSOLUTE_TIMEOUT": timedelta(hours=_int("ABSOLUTE_TIMEOUT_HOURS", 12)),
        "PERMANENT_SESSION_LIFETIME": timedelta(hours=_int("ABSOLUTE_TIMEOUT_HOURS", 12)),
        # The cookie is signed and sent again only when the session changes (not on background
        # requests and static files): the absolute limit counts from signed_in_at, not from the
        # cookie's expiry.
        "SESSION_REFRESH_EACH_REQUEST": False,
        # Repeated sign-in failures slow an account down (per account and address).
        "LOGIN_THROTTLE_FREE_FAILURES": _int("LOGIN_THROTTLE_FREE_FAILURES", 5),
        # How long a re-authentication (password, and second factor where enrolled) lets a user
        # change their second factor, password or sessions, or see recovery codes.
        "REAUTHENTICATION_MINUTES": _int("REAUTHENTICATION_MINUTES", 5),
        # A session's last use is written to its record at most this often.
        "SESSION_TOUCH_SECONDS": _int("SESSION_TOUCH_SECONDS", 60),
        # Backups are signed with this key (else one derived from SECRET_KEY): it is never
        # inside a backup, so a backup edited by someone without it fails its check.
        "BACKUP_SIGNING_KEY": os.environ.get("BACKUP_SIGNING_KEY"),
        "LOGIN_THROTTLE_MAX_SECONDS": _int("LOGIN_THROTTLE_MAX_SECONDS", 900),
        "SETUP_LINK_HOURS": _int("SETUP_LINK_HOURS", 72),
        "MAX_CONTENT_LENGTH": _int("IMPORT_MAX_MB", 50) * 1024 * 1024,
        "IMPORT_MAX_BYTES": _int("IMPORT_MAX_MB", 50) * 1024 * 1024,
        # Second factor (security.md): always for admins; for everyone when this is set.
        "REQUIRE_TOTP_FOR_ALL": os.environ.get("REQUIRE_TOTP_FOR_ALL", "").lower()
        in ("1", "true", "yes"),
        # Number of reverse proxies in front of the portal whose X-Forwarded-* headers are
        # trusted (0: none). With it, HTTPS at the proxy is seen, so HSTS is sent.
        "PORTAL_TRUST_PROXY": _int("PORTAL_TRUST_PROXY", 0),
        "UPLOAD_RATE_LIMIT": os.environ.get("UPLOAD_RATE_LIMIT", "10 per minute"),
        "SESSION_WARNING_SECONDS": _int("SESSION_WARNING_SECONDS", 120),
        "RATELIMIT_STORAGE_URI": os.environ.get("REDIS_URL") or "memory://",
        "RATELIMIT_HEADERS_ENABLED": True,
        "WTF_CSRF_TIME_LIMIT": None,  # the token lives as long as the session
        "WTF_CSRF_HEADERS": ["X-CSRFToken", "X-CSRF-Token"],
    }
