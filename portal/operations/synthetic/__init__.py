"""Realistic synthetic FLS records, for the demo and for benchmark-sized databases.

The spread follows spec/reference.md: services range from good to poor (assessment delays, DXA
rates, follow-up completion, missing audited fields); about a fifth of index fractures are hips and
5-20% spines; men are less likely to get a falls assessment and treatment; care-home residents
wait longer for a DXA; follow-ups not yet due are left empty. Every row satisfies the rules of
spec/dataset.md. Everything is drawn from the `random.Random` passed in, so the same seed and the
same `today` give the same rows.

Three modules: `people` (who the patients are: services' profiles, NHS numbers, the patient of a
fracture), `journeys` (what happens on their journey, and `generate`), `writing` (`write`, the
rows in bulk with their audit events).
"""

from portal.journey.rules import nhs_check_digit
from portal.operations.synthetic.journeys import FIRST_FRACTURE_DATE, generate
from portal.operations.synthetic.people import (
    POSTCODE_AREAS,
    NhsNumbers,
    Row,
    ServiceProfile,
    identified_per_year,
    make_profiles,
    years_before,
)
from portal.operations.synthetic.writing import EPISODE_COLUMNS, PATIENT_COLUMNS, Written, write

__all__ = [
    "EPISODE_COLUMNS",
    "FIRST_FRACTURE_DATE",
    "PATIENT_COLUMNS",
    "POSTCODE_AREAS",
    "NhsNumbers",
    "Row",
    "ServiceProfile",
    "Written",
    "generate",
    "identified_per_year",
    "make_profiles",
    "nhs_check_digit",
    "write",
    "years_before",
]
