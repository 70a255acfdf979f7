"""The demo makes the pages of issue 20 meaningful: hip fractures recorded for all but one service,
second fractures and deaths, and services outside their funnel limits."""

from __future__ import annotations

import csv
import io

from sqlalchemy import select


def test_demo_has_hip_fractures_refractures_deaths_and_outliers(db, runner):
    from portal.models import HipFractureCount, Service

    assert runner.invoke(args=["demo", "--today", "2026-11-27"]).exit_code == 0
    recorded = {
        code
        for (code,) in db.session.execute(
            select(Service.code).join(HipFractureCount, HipFractureCount.service_id == Service.id)
        )
    }
    assert recorded == {"LTH", "NBT", "ULH", "CAV", "BCU"}  # BEL: "not yet known"

    export = runner.invoke(
        args=["outcomes", "export", "--from", "2024-01", "--to", "2024-12", "--as-of", "2026-11-27"]
    )
    national = {
        r["measure"]: r
        for r in csv.DictReader(io.StringIO(export.output))
        if r["service_code"] == "ALL"
    }
    assert int(national["refracture_12m"]["events"]) > 0
    assert 1 <= float(national["refracture_12m"]["value"]) <= 10
    assert 3 <= float(national["mortality_1y"]["value"]) <= 20

    flags = []
    for kpi in range(3, 12):
        result = runner.invoke(
            args=[
                "kpis",
                "funnel",
                "--kpi",
                str(kpi),
                "--from",
                "2025-01",
                "--to",
                "2025-12",
                "--as-of",
                "2026-11-27",
            ]
        )
        flags += [r["flag"] for r in csv.DictReader(io.StringIO(result.output))]
    assert any(flag != "within" for flag in flags)
