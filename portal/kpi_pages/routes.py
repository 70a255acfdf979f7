"""Service KPI pages, run charts and the annual report (signed-in users; KPI figures only, never
patient-identifiable data). Members see their services; admins see every service's figures."""

from __future__ import annotations

from typing import NoReturn

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from werkzeug.exceptions import NotFound

from kpis.charts import FORMATS, size_of
from kpis.definitions import BAND_WORDS, KPI, KPI_BY_NUMBER, KPIS
from kpis.periods import Period
from kpis.splits import SPLIT_BY_NAME, SPLITS
from portal import clock, pdf
from portal.access import current_service, switch_service
from portal.extensions import db
from portal.kpi_pages import (
    choices,
    comparison,
    missed_patients,
    outcome_figures,
    split_figures,
)
from portal.kpi_pages import figures as kpi_figures
from portal.kpi_pages.forms import HipFracturesForm
from portal.models import Service
from portal.policy import may
from portal.security import current_actor, deny, requires

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
    positions = {
        p.kpi.number: p for p in comparison.positions(service.code, choice.period, choice.as_of)
    }
    outcomes = outcome_figures.service_outcomes(service, choice.period, choice.as_of)
    return render_template(
        "kpis/service.html",
        page=page,
        positions=positions,
        outcomes=outcomes,
        **_context(service, choice),
    )


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
    size = size_of(request.args.get("size"))
    image = kpi_figures.chart_image(number, service, choice.period, choice.as_of, False, fmt, size)
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


def _report_context(service: Service) -> dict:
    """What the annual report shows, on screen and in its PDF: last year unless asked."""
    args = request.args.to_dict()
    args["kind"] = "year"
    args.setdefault("year", str(clock.today().year - 1))
    choice = choices.choose_period(args)
    report = kpi_figures.annual_report(service, choice.year, choice.as_of)
    year = Period.year(choice.year)
    positions = {p.kpi.number: p for p in comparison.positions(service.code, year, choice.as_of)}
    return {
        "report": report,
        "positions": positions,
        "outcomes": outcome_figures.service_outcomes(service, year, choice.as_of),
        "charts": {
            line.kpi.number: kpi_figures.run_chart(
                line.kpi.number, service, year, choice.as_of, public=False
            )
            for line in report.lines
        },
        **_context(service, choice),
    }


@bp.get("/report")
def annual_report():
    service = _service()
    return render_template("kpis/report.html", images=None, **_report_context(service))


@bp.get("/report.pdf")
def annual_report_pdf():
    """The annual report as an A4 PDF made on the server, every chart in it."""
    service = _service()
    context = _report_context(service)
    report = context["report"]
    images = kpi_figures.report_images(service, report.year, report.as_of)
    html = render_template("kpis/report_pdf.html", images=images, **context)
    name = f"annual-report-{service.code}-{report.year}.pdf"
    return Response(
        pdf.pdf_of(html),
        mimetype="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


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


# --- outcomes, funnel plots, splits, the outlier policy, missed patients ----------------------


def _funnel_kpi(number: int) -> KPI:
    if number not in choices.FUNNEL_KPIS:
        abort(404)
    return KPI_BY_NUMBER[number]


def _image(data: bytes, fmt: str) -> Response:
    return Response(data, mimetype=CONTENT_TYPES[fmt])


def _csv(text: str, name: str) -> Response:
    return Response(
        text, mimetype="text/csv", headers={"Content-Disposition": f'attachment; filename="{name}"'}
    )


@bp.get("/outcomes")
def service_outcomes():
    service = _service()
    choice = choices.choose_period(request.args, default_months=12)
    page = outcome_figures.service_outcomes(service, choice.period, choice.as_of)
    return render_template("kpis/outcomes.html", page=page, **_context(service, choice))


@bp.get("/outcomes/curve.<fmt>")
def outcomes_curve(fmt: str):
    if fmt not in FORMATS:
        abort(404)
    service = _service()
    choice = choices.choose_period(request.args, default_months=12)
    size = size_of(request.args.get("size"))
    return _image(outcome_figures.curve_image(service, choice.period, choice.as_of, fmt, size), fmt)


@bp.get("/outcomes/data.csv")
def outcomes_csv():
    service = _service()
    choice = choices.choose_period(request.args, default_months=12)
    name = f"outcomes-{service.code}-{choice.period.first}-{choice.period.last}.csv"
    return _csv(outcome_figures.service_csv(service, choice.period, choice.as_of), name)


@bp.get("/<int:number>/funnel")
def kpi_funnel(number: int):
    kpi = _funnel_kpi(number)
    service = _service()
    choice = choices.choose_period(request.args)
    chart = comparison.funnel_chart(number, choice.period, choice.as_of, service.code, False)
    return render_template("kpis/funnel.html", kpi=kpi, chart=chart, **_context(service, choice))


@bp.get("/<int:number>/funnel.<fmt>")
def kpi_funnel_image(number: int, fmt: str):
    _funnel_kpi(number)
    if fmt not in FORMATS:
        abort(404)
    service = _service()
    choice = choices.choose_period(request.args)
    size = size_of(request.args.get("size"))
    image = comparison.funnel_image(
        number, choice.period, choice.as_of, service.code, False, fmt, size
    )
    return _image(image, fmt)


@bp.get("/<int:number>/funnel.csv")
def kpi_funnel_csv(number: int):
    _funnel_kpi(number)
    service = _service()
    choice = choices.choose_period(request.args)
    chart = comparison.funnel_chart(number, choice.period, choice.as_of, service.code, False)
    return _csv(chart.csv(), f"funnel-kpi{number}-{choice.period.first}-{choice.period.last}.csv")


def _split() -> str:
    split = request.args.get("split", "sex")
    return split if split in SPLIT_BY_NAME else "sex"


@bp.get("/splits")
def splits():
    service = _service()
    choice = choices.choose_period(request.args)
    split = _split()
    own = split_figures.table(split, service, choice.period, choice.as_of, public=False)
    national = split_figures.table(split, None, choice.period, choice.as_of, public=False)
    context = _context(service, choice)
    return render_template(
        "kpis/splits.html",
        split=SPLIT_BY_NAME[split],
        splits=SPLITS,
        tables=[("service", own), ("national", national)],
        **context,
    )


@bp.get("/splits/<scope>.<fmt>")
def splits_chart(scope: str, fmt: str):
    if fmt not in FORMATS or scope not in ("service", "national"):
        abort(404)
    service = _service()
    choice = choices.choose_period(request.args)
    subject = service if scope == "service" else None
    size = size_of(request.args.get("size"))
    image = split_figures.chart_image(
        _split(), subject, choice.period, choice.as_of, False, fmt, size
    )
    return _image(image, fmt)


@bp.get("/splits/<scope>.csv")
def splits_csv(scope: str):
    if scope not in ("service", "national"):
        abort(404)
    service = _service()
    choice = choices.choose_period(request.args)
    subject = service if scope == "service" else None
    shown = split_figures.table(_split(), subject, choice.period, choice.as_of, public=False)
    code = service.code if subject else choices.NATIONAL
    return _csv(
        shown.csv(), f"split-{_split()}-{code}-{choice.period.first}-{choice.period.last}.csv"
    )


@bp.get("/outliers")
def outlier_policy():
    """The outlier policy, and the current alerts and alarms of the user's services (every
    service for those who see every service's figures) for the last complete year."""
    year = clock.today().year - 1
    if may(current_user, "see_every_service_figures"):
        services = [(s.code, s.name) for s in kpi_figures.all_services()]
    else:
        services = [(s.code, s.name) for s in sorted(current_user.services, key=lambda s: s.code)]
    found = comparison.signals(services, Period.year(year), clock.today())
    return render_template(
        "kpis/outliers.html", year=year, signals=found, services=services, kpis=KPIS
    )


@bp.route("/hip-fractures", methods=["GET", "POST"])
@requires("record_hip_fractures")
def hip_fractures():
    form = HipFracturesForm()
    all_services = kpi_figures.all_services()
    form.service.choices = [(s.code, f"{s.code} - {s.name}") for s in all_services]
    form.year.choices = [(y, str(y)) for y in choices.years()]
    if not form.is_submitted():
        form.year.data = clock.today().year - 1
    if form.validate_on_submit():
        service = choices.find_service(form.service.data or "")
        if service is None:
            form.service.errors = ["Choose a service"]
        else:
            try:
                changes = missed_patients.record_hip_fractures(
                    current_actor(), service, form.year.data, form.hip_fractures.data
                )
            except missed_patients.HipFractureError as error:
                getattr(form, error.field).errors = [str(error)]
            else:
                db.session.commit()
                flash(
                    f"Saved {service.code}'s hip fractures for {form.year.data}."
                    if changes
                    else "No changes.",
                    "success",
                )
                return redirect(url_for("kpis.hip_fractures"))
    return render_template(
        "kpis/hip_fractures.html",
        form=form,
        services=all_services,
        recorded=missed_patients.hip_fractures(),
        years=choices.years()[:4],
    )
