"""Service KPI pages, run charts and the annual report (signed-in users; KPI figures only, never
patient-identifiable data). Members see their services; admins see every service's figures."""

from __future__ import annotations

from typing import NoReturn

from flask import Blueprint, Response, abort, render_template, request
from flask_login import current_user
from werkzeug.exceptions import NotFound

from kpis.charts import FORMATS
from kpis.definitions import BAND_WORDS, KPI_BY_NUMBER, KPIS
from portal import clock
from portal.access import current_service, switch_service
from portal.kpi_pages import choices
from portal.kpi_pages import figures as kpi_figures
from portal.models import Service
from portal.policy import may
from portal.security import deny

bp = Blueprint("kpis", __name__)

CONTENT_TYPES = {"svg": "image/svg+xml", "png": "image/png"}


def _not_found(reason: str) -> NoReturn:
    """Audit the refusal and answer 404 (deny aborts)."""
    deny(reason, status=404)
    raise NotFound()


def _service() -> Service:
    """The service whose figures are asked for: `?service=CODE` or the current service. Admins
    may see every service's figures (policy.py), members their own services'."""
    code = (request.args.get("service") or "").strip().upper()
    if may(current_user, "see_every_service_figures"):
        if code:
            service = choices.find_service(code)
            if service is None:
                abort(404)
            return service
        service = current_service()
        if service is None:
            services = kpi_figures.all_services()
            if not services:
                abort(404, description="There is no service yet.")
            service = choices.find_service(services[0].code)
        if service is None:
            abort(404)
        return service
    if code:
        service = next((s for s in current_user.services if s.code == code), None)
        if service is None:
            _not_found(f"KPI figures of service {code} the user does not belong to")
        return switch_service(service.id)
    service = current_service()
    if service is None:
        _not_found("no service membership")
    return service


def _kpi(number: int):
    kpi = KPI_BY_NUMBER.get(number)
    if kpi is None:
        abort(404)
    return kpi


def _context(service, choice):
    return {
        "service": service,
        "choice": choice,
        "years": choices.years(),
        "band_words": BAND_WORDS,
        "kpis": KPIS,
        "query": choice.query() | {"service": service.code},
        "services": kpi_figures.all_services()
        if may(current_user, "see_every_service_figures")
        else None,
    }


@bp.get("/")
def service_kpis():
    service = _service()
    choice = choices.choose_period(request.args)
    page = kpi_figures.service_page(service, choice.period, choice.as_of)
    return render_template("kpis/service.html", page=page, **_context(service, choice))


@bp.get("/<int:number>")
def kpi_run_chart(number: int):
    kpi = _kpi(number)
    service = _service()
    choice = choices.choose_period(request.args, default_months=24)
    chart = kpi_figures.run_chart(number, service, choice.period, choice.as_of, public=False)
    return render_template("kpis/run_chart.html", kpi=kpi, chart=chart, **_context(service, choice))


@bp.get("/<int:number>/chart.<fmt>")
def kpi_chart_image(number: int, fmt: str):
    _kpi(number)
    if fmt not in FORMATS:
        abort(404)
    service = _service()
    choice = choices.choose_period(request.args, default_months=24)
    image = kpi_figures.chart_image(number, service, choice.period, choice.as_of, False, fmt)
    return Response(image, mimetype=CONTENT_TYPES[fmt])


@bp.get("/<int:number>/data.csv")
def kpi_chart_csv(number: int):
    _kpi(number)
    service = _service()
    choice = choices.choose_period(request.args, default_months=24)
    chart = kpi_figures.run_chart(number, service, choice.period, choice.as_of, public=False)
    name = f"kpi{number}-{service.code}-{choice.period.first}-{choice.period.last}.csv"
    return Response(
        chart.csv(),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@bp.get("/report")
def annual_report():
    service = _service()
    args = request.args.to_dict()
    args["kind"] = "year"
    args.setdefault("year", str(clock.today().year - 1))
    choice = choices.choose_period(args)
    report = kpi_figures.annual_report(service, choice.year, choice.as_of)
    return render_template("kpis/report.html", report=report, **_context(service, choice))


@bp.app_template_filter("kpi_change")
def kpi_change(amount) -> str:
    """A change in percentage points with its sign, one decimal, rounded half up."""
    from kpis.numbers import format_value

    if amount is None:
        return ""
    text = format_value(abs(amount))
    if text == "0.0":
        return "0.0"
    return ("+" if amount > 0 else "\u2212") + text


@bp.app_template_filter("kpi_percent")
def kpi_percent(value) -> str:
    from kpis.numbers import format_value

    return "" if value is None else format_value(value) + "%"


@bp.app_template_filter("sentence")
def sentence(text: str) -> str:
    """First letter in capitals, the rest as written (Jinja's capitalize lowers "DXA")."""
    return text[:1].upper() + text[1:]
