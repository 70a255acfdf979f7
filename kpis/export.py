"""The KPI export (spec/kpis.md, "Export"): CSV rows from a report."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

from kpis.engine import Report, Row

HEADER = (
    "service_code",
    "period_start",
    "period_end",
    "kpi",
    "numerator",
    "denominator",
    "value",
    "band",
)


def export_rows(report: Report, include_national: bool = True) -> Iterator[tuple[str, ...]]:
    """11 rows per service in the report, then (unless a service was asked for) 11 national rows."""
    rows: list[Row] = list(report.rows)
    if include_national:
        rows.append(report.national)
    start = report.period.start.isoformat()
    end = report.period.end.isoformat()
    for row in rows:
        for figure in row.figures:
            yield (
                row.code,
                start,
                end,
                str(figure.kpi.number),
                str(figure.numerator),
                figure.denominator_text,
                figure.value_text,
                figure.band,
            )


def export_csv(report: Report, include_national: bool = True) -> str:
    """The export as CSV text, header first, lines ending in LF."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(HEADER)
    writer.writerows(export_rows(report, include_national))
    return buffer.getvalue()
