"""Every area's blueprint is registered here: one line per area."""

from flask import Flask


def register(app: Flask) -> None:
    from portal.accounts.routes import bp as auth_bp
    from portal.admin.routes import bp as admin_bp
    from portal.audit.routes import bp as audit_bp
    from portal.journey.routes import bp as journey_bp
    from portal.journey.treatment_plan.routes import bp as treatment_bp
    from portal.kpi_pages.routes import bp as kpis_bp
    from portal.main.routes import bp as main_bp
    from portal.offline.routes import bp as offline_bp
    from portal.public.routes import bp as public_bp
    from portal.records.routes import bp as imports_bp

    app.register_blueprint(main_bp)
    app.register_blueprint(auth_bp, url_prefix="/auth")
    app.register_blueprint(admin_bp, url_prefix="/admin")
    app.register_blueprint(audit_bp, url_prefix="/audit")
    app.register_blueprint(journey_bp)
    app.register_blueprint(treatment_bp)
    app.register_blueprint(imports_bp, url_prefix="/records")
    app.register_blueprint(kpis_bp, url_prefix="/kpis")
    app.register_blueprint(public_bp, url_prefix="/benchmarks")
    app.register_blueprint(offline_bp)
