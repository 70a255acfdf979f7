"""FLS services (units): validation of code, nation and caseload; add, update, import."""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from kpis.dataset import NATIONS
from portal.audit import events as audit
from portal.audit.actor import Actor
from portal.extensions import db
from portal.models import Service

CODE_PATTERN = re.compile(r"^[A-Z0-9]{3}$")


class ServiceError(ValueError):
    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


def clean_code(code: str) -> str:
    code = (code or "").strip().upper()
    if not CODE_PATTERN.match(code):
        raise ServiceError("Service code must be 3 letters or digits, like BRD", "code")
    if code == "ALL":
        raise ServiceError(
            "ALL is kept for the national figures and cannot be a service code", "code"
        )
    return code


def clean_nation(nation: str) -> str:
    wanted = (nation or "").strip().lower()
    for known in NATIONS:
        if known.lower() == wanted:
            return known
    raise ServiceError(f"Unknown nation {nation!r}: choose one of {', '.join(NATIONS)}", "nation")


def clean_caseload(value: str | int) -> int:
    text = str(value).strip()
    if not re.fullmatch(r"\+?\d+", text) or int(text) <= 0:
        raise ServiceError(
            f"Expected caseload must be a whole number above 0, not {text!r}", "expected_caseload"
        )
    return int(text)


def clean_name(name: str) -> str:
    name = (name or "").strip()
    if not name:
        raise ServiceError("Enter the service's name", "name")
    if len(name) > 200:
        raise ServiceError("Service name must be 200 characters or fewer", "name")
    return name


def add_service(
    actor: Actor, code: str, name: str, nation: str, expected_caseload: str | int
) -> Service:
    code = clean_code(code)
    values = {
        "name": clean_name(name),
        "nation": clean_nation(nation),
        "expected_caseload": clean_caseload(expected_caseload),
    }
    if db.session.scalar(select(Service).where(Service.code == code)) is not None:
        raise ServiceError(f"A service with code {code} already exists", "code")
    service = Service(code=code, active=True, data_version=0, **values)
    db.session.add(service)
    db.session.flush()
    audit.record(
        actor, "create", service, {"code": (None, code)} | {k: (None, v) for k, v in values.items()}
    )
    return service


def update_service(
    actor: Actor,
    service: Service,
    *,
    name: str,
    nation: str,
    expected_caseload: str | int,
    active: bool,
) -> dict:
    changes = audit.apply_changes(
        service,
        {
            "name": clean_name(name),
            "nation": clean_nation(nation),
            "expected_caseload": clean_caseload(expected_caseload),
            "active": bool(active),
        },
    )
    if "expected_caseload" in changes:
        service.data_version += 1  # KPI 2 changes with the caseload
    if changes:
        audit.record(actor, "update", service, changes)
    return changes


@dataclass
class ServiceImportReport:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    refusals: list[str] = field(default_factory=list)

    @property
    def refused(self) -> int:
        return len({line.split(":")[0] for line in self.refusals})


def import_services(actor: Actor, text: str) -> ServiceImportReport:
    """Add or update services from CSV `code,name,nation,expected_caseload`; all-or-nothing.

    Never changes whether a service is active. The caller commits only when nothing was refused.
    """
    report = ServiceImportReport()
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    rows = list(reader)
    if not rows:
        report.refusals.append("line 1: the file is empty")
        return report
    header = [h.strip().lower() for h in rows[0]]
    wanted = ["code", "name", "nation", "expected_caseload"]
    missing = [h for h in wanted if h not in header]
    if missing:
        report.refusals.append(f"line 1: missing column(s) {', '.join(missing)}")
        return report
    seen: dict[str, int] = {}
    checked = []
    for number, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        cells = dict(zip(header, row, strict=False))
        values: dict[str, Any] = {}
        for column, cleaner in (
            ("code", clean_code),
            ("name", clean_name),
            ("nation", clean_nation),
            ("expected_caseload", clean_caseload),
        ):
            try:
                values[column] = cleaner(cells.get(column, ""))
            except ServiceError as error:
                report.refusals.append(f"line {number}: {column}: {error}")
        if len(values) < 4:
            continue
        if values["code"] in seen:
            report.refusals.append(f"line {number}: code: duplicate of line {seen[values['code']]}")
            continue
        seen[values["code"]] = number
        checked.append(values)
    if report.refusals:
        return report
    for values in checked:
        service = db.session.scalar(select(Service).where(Service.code == values["code"]))
        if service is None:
            add_service(actor, **values)
            report.added += 1
        else:
            changes = update_service(
                actor,
                service,
                name=values["name"],
                nation=values["nation"],
                expected_caseload=values["expected_caseload"],
                active=service.active,
            )
            if changes:
                report.updated += 1
            else:
                report.unchanged += 1
    return report
