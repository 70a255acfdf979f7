"""Worklists of a service (spec/dataset.md, "Worklists").

d is the number of days since fracture_date, today (Europe/London). An episode stays on a list
until the field that ends its wait is answered; deceased patients and deleted episodes never
appear. A follow-up recorded as not done ends the wait once its window has closed, or at once when
the patient was lost to follow-up (issue 18): a "not done" brought in by an import before then
keeps the episode listed. Each row shows who the patient is, what is due by when and the last
attempt to reach them (journey/contacts.py).

Windows are inclusive and turned into fracture-date bounds so that the database does the
filtering, sorting and paging. Each list's wait is a few parts no episode is in twice, each with
its own partial index on PostgreSQL (portal/models/waiting.py, migration 0011): a list is counted
from its indexes without reading its patients, and a page takes the first rows of each part in
the order asked for, then merges them. Ten years of a service (140,000 episodes) stay under
100 ms a page (docs/benchmarks.md); on SQLite the same statements read the service's episodes in
stored order (kpis.sql.unindexed).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from functools import partial
from typing import Any

from sqlalchemy import and_, func, literal, not_, or_, select, union_all
from sqlalchemy.sql.elements import ColumnElement

from kpis import dataset as ds
from kpis.sql import unindexed
from portal import query_values
from portal.extensions import db
from portal.journey import contacts
from portal.journey.rules import age_on, missing_audited_fields
from portal.journey.rules.direct_care import fold_name
from portal.models import Episode, Patient, Service, waiting
from portal.models.contacts import LOST_TO_FOLLOW_UP as LOST

# The last day of each follow-up's window, in days since the fracture.
FOLLOWUP_CLOSES = {
    "followup16": ds.FOLLOWUP16_WINDOW_DAYS[1],
    "followup52": ds.FOLLOWUP52_WINDOW_DAYS[1],
}

PAGE_SIZE = 50
# The print view and the CSV download show a whole list, up to this many rows.
WHOLE_LIST = 2000
STATUSES = ("due", "overdue", "soon")
# "Due in the next 14 days": the last day of the wait falls within this many days from today.
SOON_DAYS = 14


@dataclass(frozen=True)
class Worklist:
    """One worklist: which episodes wait, from which day they are listed, and when they are late.

    `listed_from` / `due_until`: days since fracture (inclusive); None means from day 0 / never late.
    """

    key: str
    title: str
    description: str
    listed_from: int | None
    due_until: int | None
    due_label: str
    overdue_label: str
    # What the nurse must do for a listed episode, as a row says it ("16-week contact").
    task: str = ""


WORKLISTS: dict[str, Worklist] = {
    w.key: w
    for w in (
        Worklist(
            "awaiting-assessment",
            "Awaiting assessment",
            "No date of FLS assessment yet. Overdue after day 90.",
            None,
            ds.ASSESSMENT_DUE_DAYS,
            "Waiting",
            "Past day 90",
            "Assessment",
        ),
        Worklist(
            "dxa-not-done",
            "DXA recommended, not done",
            "DXA recommended and no date of DXA yet. Overdue after day 90.",
            None,
            ds.ASSESSMENT_DUE_DAYS,
            "Waiting",
            "Past day 90",
            "DXA",
        ),
        Worklist(
            "followup16",
            "16-week contact",
            "Monitoring contact not recorded: due from day 84 to day 112 (12 to 16 weeks), "
            "overdue after.",
            ds.FOLLOWUP16_WINDOW_DAYS[0],
            ds.FOLLOWUP16_WINDOW_DAYS[1],
            "Due",
            "Overdue",
            "16-week contact",
        ),
        Worklist(
            "followup52",
            "12-month follow-up",
            "Follow-up not recorded: due from day 336 to day 392 (48 to 56 weeks), overdue after.",
            ds.FOLLOWUP52_WINDOW_DAYS[0],
            ds.FOLLOWUP52_WINDOW_DAYS[1],
            "Due",
            "Overdue",
            "12-month follow-up",
        ),
        Worklist(
            "incomplete",
            "Missing audited fields",
            "At least one of the 17 audited fields (KPI 1, data completeness) is empty.",
            None,
            None,
            "Incomplete",
            "",
            "Missing fields",
        ),
        Worklist(
            "due-soon",
            "Due in the next 14 days",
            "Assessment, DXA, the 16-week contact or the 12-month follow-up whose last day falls "
            "in the next 14 days.",
            None,
            None,
            "Due soon",
            "",
            "",
        ),
    )
}
# The lists whose waits have a last day, in the order a row of "due in the next 14 days" names
# the first of them that is due.
TIMED = ("awaiting-assessment", "dxa-not-done", "followup16", "followup52")

# The sorts a list offers (as the page names them) and the column each sorts on.
SORTS = {
    "fracture_date": "fracture_date",
    "nhs_number": "nhs_number",
    "name": "family_name_search",
    "date_of_birth": "date_of_birth",
}


def _day(today: date, days: int) -> date:
    """The fracture date that is `days` days before today."""
    return today - timedelta(days=days)


def _patient(service: Service, condition: ColumnElement[bool], joined: bool) -> ColumnElement[bool]:
    """The episode's patient meets the condition: said of the patient joined to the episode (a
    page of the list, which shows the patient), or as a search of the service's patients (a count,
    which reads no patient but those the condition's index finds)."""
    if joined:
        return condition
    return (
        select(Patient.id)
        .where(Patient.id == Episode.patient_id, Patient.service_id == service.id, condition)
        .correlate_except(Patient)
        .exists()
    )


def _parts(key: str, service: Service, today: date, joined: bool) -> list[ColumnElement[bool]]:
    """A list's wait as parts no episode is in twice, each read through its own partial index
    (portal/models/waiting.py): the field that ends the wait is not answered; a follow-up
    recorded as not done while its window is open and the patient was not lost to follow-up (an
    import may bring such a "No"); an audited field of the patient's own missing."""
    unanswered = waiting.UNANSWERED[key]
    if key in ("followup16", "followup52"):
        done = getattr(Episode, f"{key}_done")
        reason = getattr(Episode, f"{key}_not_done_reason")
        still_open = and_(
            done == waiting.constant("No"),
            Episode.fracture_date >= _day(today, FOLLOWUP_CLOSES[key]),
            or_(reason.is_(None), reason != LOST),
        )
        return [unanswered, still_open]
    if key == "incomplete":
        # Every episode of the few patients missing an audited field of their own, then the
        # other patients' episodes missing one of theirs.
        patient_incomplete = _patient(service, waiting.PATIENT_INCOMPLETE, joined)
        return [patient_incomplete, and_(unanswered, not_(patient_incomplete))]
    return [unanswered]


def _live_in(service: Service, joined: bool) -> list[ColumnElement[bool]]:
    """A service's live episodes whose patient is alive. On SQLite the live term is read through
    `ix_episodes_service_id` in the order rows are stored (see kpis.sql.unindexed)."""
    return [
        Episode.service_id == service.id,
        unindexed(Episode.__table__.c.deleted_at).is_(None),
        not_(_patient(service, waiting.DECEASED, joined)),
    ]


def _soon(worklist: Worklist, today: date) -> ColumnElement[bool]:
    """The last day of the wait is today or within the next SOON_DAYS days."""
    assert worklist.due_until is not None
    return and_(
        Episode.fracture_date >= _day(today, worklist.due_until),
        Episode.fracture_date <= _day(today, worklist.due_until - SOON_DAYS),
    )


def _listed(worklist: Worklist, today: date) -> list[ColumnElement[bool]]:
    if worklist.listed_from is None:
        return []
    return [Episode.fracture_date <= _day(today, worklist.listed_from)]


def _membership(
    worklist: Worklist, service: Service, today: date, joined: bool
) -> list[ColumnElement[bool]]:
    """Which live episodes a list holds, as parts no episode is in twice (one for "due in the next
    14 days", whose waits overlap)."""
    if worklist.key == "due-soon":
        return [
            or_(
                *(
                    and_(or_(*_parts(key, service, today, joined)), _soon(WORKLISTS[key], today))
                    for key in TIMED
                )
            )
        ]
    return [
        and_(part, *_listed(worklist, today))
        for part in _parts(worklist.key, service, today, joined)
    ]


def _overdue(worklist: Worklist, today: date) -> ColumnElement[bool] | None:
    if worklist.due_until is None:
        return None
    return Episode.fracture_date < _day(today, worklist.due_until)


@dataclass(frozen=True)
class Row:
    episode_id: int
    patient_id: int
    nhs_number: str
    fracture_date: date
    fracture_sites: str | None
    days: int
    overdue: bool
    missing: int | None
    name: str = ""
    given_name: str | None = None
    family_name: str | None = None
    age: int | None = None
    phone: str | None = None
    # What is due (the list's task, or the first due of "due in the next 14 days") and by when.
    task: str = ""
    due_by: date | None = None
    last_attempt: contacts.LastAttempt | None = None


@dataclass(frozen=True)
class Page:
    worklist: Worklist
    rows: list[Row]
    total: int
    page: int
    pages: int
    sort: str
    order: str
    status: str
    nhs: str
    name: str = ""

    @property
    def identifying(self) -> bool:
        """Filtered by NHS number or name: sorting and paging post the filter again."""
        return bool(self.nhs or self.name)


def _missing_counts(episode_ids: list[int]) -> dict[int, int]:
    """How many audited fields each listed episode misses, by the dataset rules' own count."""
    if not episode_ids:
        return {}
    patient_columns = [getattr(Patient, n) for n in ds.AUDITED_FIELDS if n in ds.PATIENT_FIELDS]
    episode_columns = [getattr(Episode, n) for n in ds.AUDITED_FIELDS if n not in ds.PATIENT_FIELDS]
    query = (
        select(Episode.id, *patient_columns, *episode_columns)
        .join(Patient, Patient.id == Episode.patient_id)
        .where(Episode.id.in_(episode_ids))
    )
    counts = {}
    for row in db.session.execute(query):
        values = row._asdict()
        counts[row.id] = len(missing_audited_fields(values, values))
    return counts


def choices(values: Mapping[str, str], *, posted: bool) -> dict[str, Any]:
    """The sort, order, status, NHS number and name filters and page asked for. The NHS number
    and name filters are read from a posted form only. A posted form may carry `resort`
    ("column:order", a column heading pressed) or `goto` (a page number pressed) from the buttons
    of a filtered list. A page number no list has (10**30, -1, "x") is page 1."""
    sort, order = values.get("sort", "fracture_date"), values.get("order", "asc")
    if posted and values.get("resort"):
        sort, _, order = values["resort"].partition(":")
    wanted_page = values.get("goto") if posted and values.get("goto") else values.get("page", "1")
    page_number = query_values.page_number(wanted_page)
    return dict(
        status=values.get("status", ""),
        nhs=values.get("nhs", "")[:20] if posted else "",
        name=values.get("name", "").strip()[:100] if posted else "",
        sort=sort,
        order=order,
        page_number=page_number,
    )


def page(
    worklist: Worklist,
    service: Service,
    today: date,
    *,
    status: str = "",
    nhs: str = "",
    name: str = "",
    sort: str = "fracture_date",
    order: str = "asc",
    page_number: int = 1,
    page_size: int = PAGE_SIZE,
) -> Page:
    """One page of a worklist, filtered by status (due, overdue, due in the next 14 days), NHS
    number and name, sorted and paged.

    Sorting by fracture date oldest first puts the longest wait at the top.
    """
    overdue = _overdue(worklist, today)
    if status not in STATUSES or overdue is None:
        status = ""
    digits = "".join(ch for ch in nhs if ch.isdigit())
    folded = fold_name(name)

    def conditions(joined: bool) -> list[ColumnElement[bool]]:
        """The service's live episodes of living patients, filtered as asked."""
        chosen = _live_in(service, joined)
        if status == "soon":
            chosen.append(_soon(worklist, today))
        elif status and overdue is not None:
            chosen.append(overdue if status == "overdue" else ~overdue)
        if digits:
            number = Patient.nhs_number.contains(digits, autoescape=True)
            chosen.append(_patient(service, number, joined))
        if folded:
            named = or_(
                Patient.family_name_search.contains(folded, autoescape=True),
                Patient.given_name_search.contains(folded, autoescape=True),
            )
            chosen.append(_patient(service, named, joined))
        return chosen

    sort = sort if sort in SORTS else "fracture_date"
    order = "desc" if order == "desc" else "asc"

    # The size of the list: each part counted from its own index, without reading patients.
    total, _ = _tally(service, today, [worklist], conditions)[worklist.key]
    pages = max(1, -(-total // page_size))
    page_number = min(max(1, page_number), pages)  # past the last page: the last page

    columns = [
        Episode.id,
        Episode.patient_id,
        Patient.nhs_number,
        Episode.fracture_date,
        Episode.fracture_sites,
        Patient.given_name,
        Patient.family_name,
        Patient.family_name_search,
        Patient.date_of_birth,
        Patient.phone,
        *(WAIT_COLUMNS if worklist.key == "due-soon" else ()),
    ]
    wanted = page_number * page_size

    def ordered(columns_of: Any) -> list[Any]:
        column = columns_of[SORTS[sort]]
        return [column.desc() if order == "desc" else column.asc(), columns_of["id"].asc()]

    # Each part's first rows in the order asked for, read through its own index and stopping
    # there, then the parts merged and the page taken.
    firsts: list[Any] = []
    joined_on: ColumnElement[bool] = Patient.id == Episode.patient_id
    if sort != "fracture_date":
        # Sorted by the patient's NHS number, name or date of birth, the service is named on the
        # patient too, so that the service's patients can be walked in that order (the planner
        # then also expects fewer patients per episode: said only when it helps).
        joined_on = and_(joined_on, Patient.service_id == service.id)
    for part in _membership(worklist, service, today, joined=True):
        chosen = select(*columns).join(Patient, joined_on).where(*conditions(True), part)
        first = chosen.order_by(*ordered(chosen.selected_columns)).limit(wanted).subquery()
        firsts.append(select(first))
    merged: Any = union_all(*firsts) if len(firsts) > 1 else firsts[0]
    listed = merged.subquery()
    results = db.session.execute(
        select(listed)
        .order_by(*ordered(listed.c))
        .limit(page_size)
        .offset((page_number - 1) * page_size)
    ).all()
    ids = [r.id for r in results]
    missing = _missing_counts(ids) if worklist.key == "incomplete" else {}
    attempts = contacts.last_attempts(ids)
    rows = []
    for result in results:
        days = (today - result.fracture_date).days
        task, due_by = _task(worklist, result, today)
        rows.append(
            Row(
                episode_id=result.id,
                patient_id=result.patient_id,
                nhs_number=result.nhs_number,
                fracture_date=result.fracture_date,
                fracture_sites=result.fracture_sites,
                days=days,
                overdue=worklist.due_until is not None and days > worklist.due_until,
                missing=missing.get(result.id),
                name=" ".join(p for p in (result.given_name, result.family_name) if p),
                given_name=result.given_name,
                family_name=result.family_name,
                age=age_on(result.date_of_birth, today),
                phone=result.phone,
                task=task,
                due_by=due_by,
                last_attempt=attempts.get(result.id),
            )
        )
    return Page(worklist, rows, total, page_number, pages, sort, order, status, nhs, name)


# What "due in the next 14 days" reads to tell which wait of a row is due.
WAIT_COLUMNS = (
    Episode.assessment_date,
    Episode.dxa_status,
    Episode.dxa_date,
    Episode.followup16_done,
    Episode.followup16_not_done_reason,
    Episode.followup52_done,
    Episode.followup52_not_done_reason,
)


def _waits(result: Any, today: date) -> list[str]:
    """The timed lists a "due in the next 14 days" row waits on, read from its columns."""
    days = (today - result.fracture_date).days
    waits = []
    if not result.assessment_date:
        waits.append("awaiting-assessment")
    if result.dxa_status == "Recommended" and not result.dxa_date:
        waits.append("dxa-not-done")
    for stage in ("followup16", "followup52"):
        done, reason = getattr(result, f"{stage}_done"), getattr(result, f"{stage}_not_done_reason")
        closes = FOLLOWUP_CLOSES[stage]
        if not done or (done == "No" and days <= closes and reason != LOST):
            waits.append(stage)
    return waits


def _task(worklist: Worklist, result: Any, today: date) -> tuple[str, date | None]:
    """What is due for a row and its last day."""
    if worklist.key == "incomplete":
        return worklist.task, None
    if worklist.key != "due-soon":
        assert worklist.due_until is not None
        return worklist.task, result.fracture_date + timedelta(days=worklist.due_until)
    for key in _waits(result, today):
        timed = WORKLISTS[key]
        assert timed.due_until is not None
        due_by = result.fracture_date + timedelta(days=timed.due_until)
        if today <= due_by <= today + timedelta(days=SOON_DAYS):
            return timed.task, due_by
    return "", None


@dataclass(frozen=True)
class Count:
    worklist: Worklist
    total: int
    overdue: int


def counts(service: Service, today: date) -> list[Count]:
    """How many episodes each worklist holds, and how many of them are overdue."""
    tallies = _tally(service, today, WORKLISTS.values(), partial(_live_in, service))
    return [Count(w, *tallies[w.key]) for w in WORKLISTS.values()]


def _tally(
    service: Service,
    today: date,
    lists: Iterable[Worklist],
    conditions: Callable[[bool], list[ColumnElement[bool]]],
) -> dict[str, tuple[int, int]]:
    """(listed, overdue) of each list among the episodes meeting the conditions, in one
    statement.

    PostgreSQL counts each part of each list from its own partial index, reading no patient but
    those an index of patients finds. SQLite, which has no index-only counts, reads the service's
    episodes once, in stored order (kpis.sql.unindexed), each part a filtered count: one pass is
    quicker there than a search per part."""
    one_pass = db.engine.dialect.name == "sqlite"
    parts = []
    for worklist in lists:
        overdue = _overdue(worklist, today)
        for part in _membership(worklist, service, today, joined=one_pass):
            parts.append((worklist.key, part, overdue if overdue is not None else literal(False)))
    figures: list[tuple[str, Any, Any]]
    if one_pass:
        row = db.session.execute(
            select(
                *(
                    count
                    for _, part, late in parts
                    for count in (func.count().filter(part), func.count().filter(and_(part, late)))
                )
            )
            .select_from(Episode)
            .join(Patient, Patient.id == Episode.patient_id)
            .where(*conditions(True))
        ).one()
        figures = [(key, row[2 * i], row[2 * i + 1]) for i, (key, _, _) in enumerate(parts)]
    else:
        each = union_all(
            *(
                select(literal(key), func.count(), func.count().filter(late))
                .select_from(Episode)
                .where(*conditions(False), part)
                for key, part, late in parts
            )
        )
        figures = [(r[0], r[1], r[2]) for r in db.session.execute(each)]
    tallies: dict[str, tuple[int, int]] = {}
    for key, listed_count, late_count in figures:
        before = tallies.get(key, (0, 0))
        tallies[key] = (before[0] + int(listed_count or 0), before[1] + int(late_count or 0))
    return tallies
