"""The file FLS-DB takes in: a service's episodes written as FLS-DB's own export writes them
(shared/samples/flsdb-export-sample.csv): question-code headers, UK dates (DD/MM/YYYY), the
answer wording of FLS-DB ("Don't know" with a curly apostrophe, "Non hip/non spine"), the three
sites in 1.11-1.13, Windows-1252 and CRLF line ends.

Only fields with an FLS-DB question code are written: never the date of death (IOF, no code) nor
the patient's direct-care details. The importer reads this file back as it is (headers by code,
D/M/YYYY dates, the FLS-DB spellings), so importing it into an empty service gives the same
records, field for field.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from datetime import date
from typing import Any

from kpis.csv_output import SafeWriter
from kpis.dataset import CHOICES, MAX_FRACTURE_SITES, THERAPY_OUTCOMES
from portal.journey.rules import NOT_KNOWN, format_value, split_values
from portal.models import Service
from portal.records.export import live_episode_values

ENCODING = "cp1252"
LINE_END = "\r\n"
_BATCH = 1000

# (header, field) in FLS-DB's column order; the first 35 as in its own export, then the
# questions added with issue 19 beside their sections. 1.11-1.13 each take one site.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("1.01 NHS Number", "nhs_number"),
    ("1.02 Date of Birth", "date_of_birth"),
    ("1.03 Gender", "sex"),
    ("1.04 Post Code", "postcode"),
    ("1.05 CareRes", "care_home_resident"),
    ("1.09 Date Index Frac Diagnosed", "fracture_date"),
    ("1.06 DateFLSContact", "identification_date"),
    ("1.08 AdmitHosp", "admitted"),
    ("1.07 DateFLSAssess", "assessment_date"),
    ("1.10 FracType", "fracture_type"),
    ("2.01 Height", "height_cm"),
    ("2.02 Weight", "weight_kg"),
    ("2.03 PrevFracHist", "previous_fracture"),
    ("2.04 FamHipFracHist", "parental_hip_fracture"),
    ("2.05 Smoker", "smoker"),
    ("2.06 BoneSpareTherapy", "on_bone_therapy_at_fracture"),
    ("3.01 DXA", "dxa_status"),
    ("3.02 DXANotOrdered", "dxa_not_recommended_reason"),
    ("3.03 DateofDXA", "dxa_date"),
    ("3.04 TScore", "t_score"),
    ("3.05 RiskOfFracture", "frax_major_percent"),
    ("3.06 RiskOfHipFracture", "frax_hip_percent"),
    ("3.07 FRAXWithBMD", "frax_with_bmd"),
    ("3.08 NOGGRiskCategory", "nogg_risk_category"),
    ("5.01 RiskAssesByFLS", "falls_assessed"),
    ("5.02 TwoOrMoreFalls", "falls_two_or_more"),
    ("5.03 FearOfFalling", "fear_of_falling"),
    ("5.04 FallsRiskMeds", "falls_risk_medicines"),
    ("5.05 MobilityPreFrac", "mobility_before_fracture"),
    ("5.06 Vision", "visual_impairment"),
    ("5.07 Toileting", "toileting_problems"),
    ("5.08 AbnormalCVS", "cardiovascular_abnormal"),
    ("5.09 CognitiveImp", "cognitive_impairment"),
    ("5.10 Referrals", "falls_referred"),
    ("4.01 BoneTherapy", "bone_therapy"),
    ("4.02 CalciumVitDRec", "calcium_vitd"),
    ("6.01 FollowUp12_16", "followup16_done"),
    ("6.02 Dateof16WeekAss", "followup16_date"),
    ("6.05 BoneTherapy1216", "therapy16"),
    ("6.06 StartStrenBalExe", "strength_balance16"),
    ("7.01 FollowUp48_56", "followup52_done"),
    ("7.02 Dateof52WeekAss", "followup52_date"),
    ("7.05 BoneTherapy4856", "therapy52"),
    ("7.06 ReFracture", "refracture"),
    ("7.07 NumNewFrac", "refracture_count"),
    ("7.08 SiteNewFrac1", "refracture1_site"),
    ("7.09 DateNewFrac1", "refracture1_date"),
    ("7.10 SiteNewFrac2", "refracture2_site"),
    ("7.11 DateNewFrac2", "refracture2_date"),
    ("7.12 SiteNewFrac3", "refracture3_site"),
    ("7.13 DateNewFrac3", "refracture3_date"),
    ("1.11 SiteFirstFrac", "fracture_sites"),
    ("1.12 SiteSecFrac", "fracture_sites"),
    ("1.13 SiteThirdFrac", "fracture_sites"),
)
FIELDS = tuple(dict.fromkeys(field for _header, field in COLUMNS))
# FLS-DB's words for ours (our words are read back as they are: dataset.md, "Values").
DONT_KNOW = "Don\u2019t know"
NON_HIP_NON_SPINE = "Non hip/non spine"
SITE_FIELDS = ("fracture_sites", "refracture1_site", "refracture2_site", "refracture3_site")
# Fields where "Not known" is an answer (bone_therapy among its outcomes).
_NOT_KNOWN_ALLOWED = frozenset(
    [field for field, allowed in CHOICES.items() if NOT_KNOWN in allowed]
    + (["bone_therapy"] if NOT_KNOWN in THERAPY_OUTCOMES else [])
)


def flsdb_value(field: str, value: Any) -> str:
    """A stored value in FLS-DB's spelling (dates DD/MM/YYYY, its answer wording)."""
    if isinstance(value, date):
        return value.strftime("%d/%m/%Y")
    text = format_value(field, value)
    if text == NOT_KNOWN and field in _NOT_KNOWN_ALLOWED:
        return DONT_KNOW
    if field in SITE_FIELDS and text == "Other":
        return NON_HIP_NON_SPINE
    return text


def _sites(value: Any) -> list[str]:
    sites = [flsdb_value("fracture_sites", site) for site in split_values(value)]
    return (sites + [""] * MAX_FRACTURE_SITES)[:MAX_FRACTURE_SITES]


def flsdb_rows(service: Service) -> Iterator[list[str]]:
    """The header, then one row per live episode, by fracture_date then nhs_number."""
    yield [header for header, _field in COLUMNS]
    site_cells = len([1 for _header, field in COLUMNS if field == "fracture_sites"])
    for row in live_episode_values(service, FIELDS):
        values = dict(zip(FIELDS, row, strict=True))
        cells = [flsdb_value(field, values[field]) for _header, field in COLUMNS[:-site_cells]]
        yield cells + _sites(values["fracture_sites"])


def flsdb_file(service: Service, progress: Callable[[int], None] | None = None) -> Iterator[bytes]:
    """The file as chunks of Windows-1252 bytes, for streaming to a response or stdout."""
    buffer = io.StringIO()
    writer = SafeWriter(buffer, lineterminator=LINE_END)  # text cells neutralised, numbers kept
    for number, row in enumerate(flsdb_rows(service)):
        writer.writerow(row)
        if number % _BATCH == 0:
            yield buffer.getvalue().encode(ENCODING, errors="replace")
            buffer.seek(0)
            buffer.truncate()
            if progress is not None and number:
                progress(_BATCH)
    yield buffer.getvalue().encode(ENCODING, errors="replace")
