"""FLS Portal: create_app wires config -> extensions -> blueprints -> security hooks."""

from __future__ import annotations

import os
from typing import Any

from flask import Flask
from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url

from portal import config as config_module
from portal.extensions import compress, csrf, db, htmx, limiter, login_manager, migrate


def create_app(config: dict[str, Any] | None = None) -> Flask:
    app = Flask(__name__, instance_path=os.environ.get("PORTAL_INSTANCE_PATH"))
    os.makedirs(app.instance_path, exist_ok=True)
    app.config.update(config_module.from_environment(app.instance_path))
    if config:
        app.config.update(config)
    _configure_sqlite(app)
    _configure_transaction_pooling(app)
    _configure_jit(app)
    if app.config.get("PORTAL_TRUST_PROXY"):
        from werkzeug.middleware.proxy_fix import ProxyFix

        hops = int(app.config["PORTAL_TRUST_PROXY"])
        # Flask's documented way to add WSGI middleware.
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops
        )

    db.init_app(app)
    migrate.init_app(
        app,
        db,
        directory=os.path.join(os.path.dirname(os.path.dirname(__file__)), "migrations"),
        render_as_batch=True,
    )
    login_manager.init_app(app)
    csrf.init_app(app)
    htmx.init_app(app)
    app.config.setdefault("RATELIMIT_ENABLED", True)
    # Pages, htmx fragments and JSON only (files and exports are sent as they are); Brotli where
    # the browser takes it, else gzip; streamed answers (CSV exports) left alone.
    app.config.setdefault(
        "COMPRESS_MIMETYPES", ["text/html", "application/json", "text/javascript"]
    )
    app.config.setdefault("COMPRESS_ALGORITHM", ["br", "gzip"])
    app.config.setdefault("COMPRESS_STREAMS", False)
    limiter.init_app(app)

    from portal import blueprints

    blueprints.register(app)

    from portal import cli, security, static_files, templating

    security.init_app(app)
    templating.init_app(app)
    cli.init_app(app)
    static_files.init_app(app)
    compress.init_app(app)
    return app


def _configure_sqlite(app: Flask) -> None:
    uri = app.config["SQLALCHEMY_DATABASE_URI"]
    if uri.startswith("sqlite"):
        options = app.config.setdefault("SQLALCHEMY_ENGINE_OPTIONS", {})
        options.setdefault("connect_args", {}).setdefault("timeout", 15)


def _configure_transaction_pooling(app: Flask) -> None:
    """Behind a PgBouncer in transaction pooling each transaction may run on another server
    connection, where a statement psycopg prepared on the last one does not exist: psycopg then
    prepares none (prepare_threshold=None)."""
    uri = app.config["SQLALCHEMY_DATABASE_URI"]
    if app.config.get("DATABASE_TRANSACTION_POOLING") and uri.startswith("postgresql"):
        options = app.config.setdefault("SQLALCHEMY_ENGINE_OPTIONS", {})
        options.setdefault("connect_args", {})["prepare_threshold"] = None


def _configure_jit(app: Flask) -> None:
    """PostgreSQL compiles a query costed above `jit_above_cost` to machine code first. The
    portal's largest queries (a national KPI year, a service's outcome figures) run for 0.1 to
    1.5 s, and compiling them cost 50 to 400 ms more than it saved on ten years of a nation
    (docs/benchmarks.md): the portal's connections ask for none, unless DATABASE_JIT is set.
    Behind a PgBouncer in transaction pooling no startup option can be passed: set it on the
    database there (README, "PgBouncer")."""
    uri = app.config["SQLALCHEMY_DATABASE_URI"]
    if not uri.startswith("postgresql") or app.config.get("DATABASE_JIT"):
        return
    if app.config.get("DATABASE_TRANSACTION_POOLING"):
        return
    if "options" in make_url(uri).query:
        return  # the URL names its own server options: they are left as given
    options = app.config.setdefault("SQLALCHEMY_ENGINE_OPTIONS", {})
    options.setdefault("connect_args", {}).setdefault("options", "-c jit=off")


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection, connection_record) -> None:
    """WAL, a busy timeout and foreign keys on for every SQLite connection (security.md)."""
    module = type(dbapi_connection).__module__
    if not module.startswith("sqlite3"):
        return
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=15000")
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
    except Exception:  # in-memory databases cannot use WAL; they need no concurrency
        pass
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
