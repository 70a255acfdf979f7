"""How fast the dataset rules parse and check imported rows (prints its figures).

Run from the repository root: PYTHONPATH=. python bench/bench_dataset_rules.py [rows]
"""

from __future__ import annotations

import platform
import sys
import time
from datetime import date

from portal.journey.rules import check_record, parse_values

# One canonical row (shared/samples/canonical-sample.csv), the kind of row an import checks.
ROW = {
    "nhs_number": "999 214 6885",
    "date_of_birth": "12/10/1936",
    "sex": "female",
    "postcode": "ex76zy",
    "care_home_resident": "N",
    "fracture_date": "2025-02-17",
    "identification_date": "22/02/2025",
    "admitted": "Yes",
    "fracture_sites": "Non hip/non spine;Wrist",
    "assessment_date": "2025-07-25 00:00",
    "height_cm": "170",
    "weight_kg": "70.5",
    "previous_fracture": "Yes",
    "parental_hip_fracture": "No",
    "smoker": "Never",
    "on_bone_therapy_at_fracture": "Don\u2019t know",
    "dxa_status": "Recommended",
    "dxa_date": "9/3/2025",
    "t_score": "\u22121.20",
    "falls_assessed": "No",
    "falls_referred": "Yes",
    "bone_therapy": "Romosozumab;risedronate sodium",
    "calcium_vitd": "1",
    "followup16_done": "Yes",
    "followup16_date": "2025-03-06",
    "therapy16": "Not started",
    "strength_balance16": "No",
    "followup52_done": "Yes",
    "followup52_date": "2026-02-22",
    "therapy52": "Informed decline",
    "refracture": "No",
}
PATIENT = ("nhs_number", "date_of_birth", "sex", "postcode", "care_home_resident")


def main(rows: int) -> None:
    today = date(2026, 11, 27)
    started = time.perf_counter()
    for _ in range(rows):
        values, problems = parse_values(ROW)
        assert not problems, problems
    parsed = time.perf_counter() - started
    patient = {f: v for f, v in values.items() if f in PATIENT}
    episode = {f: v for f, v in values.items() if f not in PATIENT}
    started = time.perf_counter()
    for _ in range(rows):
        assert check_record(patient, episode, today) == {}
    checked = time.perf_counter() - started
    print(
        f"machine: {platform.machine()} {platform.processor() or ''} python {platform.python_version()}"
    )
    print(f"rows: {rows}, cells per row: {len(ROW)}")
    print(
        f"parse_values: {parsed:.2f} s ({rows / parsed:,.0f} rows/s, {rows * len(ROW) / parsed:,.0f} cells/s)"
    )
    print(f"check_record: {checked:.2f} s ({rows / checked:,.0f} rows/s)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20_000)
