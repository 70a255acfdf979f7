"""The FLS-DB dataset vocabulary (spec/dataset.md), shared by the portal and the KPI engine.

Kept free of Flask so that the KPI engine, the validation layer and the CSV importer all read
one list of allowed values.
"""

from __future__ import annotations

from datetime import date

NATIONS = ("England", "Wales", "Northern Ireland")
ROLES = ("clinician", "lead", "admin")

YES_NO_UNKNOWN = ("Yes", "No", "Not known")
SEXES = ("Male", "Female", "Other", "Not known")
SMOKER = ("Current", "Ex", "Never", "Not known")
DXA_STATUS = ("Recommended", "Not recommended", "Not known")
DXA_NOT_RECOMMENDED_REASONS = (
    "Recent DXA",
    "Treat without DXA",
    "Patient declined",
    "Not appropriate",
    "Other",
)
FRACTURE_SITES = ("Hip", "Spine", "Humerus", "Pelvis", "Wrist", "Other")
DRUGS = (
    "Alendronate",
    "Risedronate",
    "Ibandronate",
    "Zoledronate",
    "Denosumab",
    "Teriparatide",
    "Romosozumab",
    "Abaloparatide",
    "Strontium ranelate",
    "Alfacalcidol",
    "HRT",
    "Raloxifene",
)
# Withdrawn in the UK (2017): still read from imports and kept, never offered on a form.
WITHDRAWN_DRUGS = ("Strontium ranelate",)
# Approved names accepted as the same drug.
DRUG_SYNONYMS = {
    "alendronic acid": "Alendronate",
    "risedronate sodium": "Risedronate",
    "ibandronic acid": "Ibandronate",
    "zoledronic acid": "Zoledronate",
}
THERAPY_OUTCOMES = (
    "Not appropriate",
    "Informed decline",
    "Referred for clinical opinion",
    "Referred to GP to decide",
    "Not known",
)
FOLLOWUP_THERAPY_OUTCOMES = (
    "Not started",
    "No longer appropriate",
    "Informed decline",
    "Referred for clinical opinion",
    "Not known",
)
FOLLOWUP_THERAPY = DRUGS + FOLLOWUP_THERAPY_OUTCOMES

PATIENT_FIELDS = (
    "nhs_number",
    "date_of_birth",
    "sex",
    "postcode",
    "care_home_resident",
    "date_of_death",
)

# Fields of the rest of the FLS-DB dataset (issue 19) ------------------------------------------
# Type of fracture (1.10): a fracture that brought the patient to clinical attention, or one found
# on imaging done for another reason (mostly vertebral fractures).
FRACTURE_TYPES = ("Clinical", "Incidental finding on imaging", "Not known")
# FRAX (3.05, 3.06) worked out with or without the bone mineral density (3.07).
FRAX_BMD = ("With BMD", "Without BMD")
# The NOGG 2022 category as the clinician judged it with the NOGG tool (3.08).
NOGG_RISK_CATEGORIES = ("Low", "Intermediate", "High", "Very high")
VERY_HIGH_RISK_ADVICE = "Consider anabolic treatment first (NOGG 2022)"
# Mobility before the fracture (5.05), in the hip fracture audit's words.
MOBILITY = (
    "Freely mobile without aids",
    "Mobile outdoors with one aid",
    "Mobile outdoors with two aids or frame",
    "Some indoor mobility only",
    "No functional mobility",
    "Not known",
)
# The falls-risk items 5.02-5.09, in FLS-DB order.
FALLS_RISK_FIELDS = (
    "falls_two_or_more",
    "fear_of_falling",
    "falls_risk_medicines",
    "mobility_before_fracture",
    "visual_impairment",
    "toileting_problems",
    "cardiovascular_abnormal",
    "cognitive_impairment",
)
# At 12 months: how many new fractures since the index one (7.07), and up to three of them with
# their site and date (7.08-7.13).
MAX_NEW_FRACTURES_DESCRIBED = 3
REFRACTURE_DETAIL_FIELDS = (
    "refracture_count",
    "refracture1_site",
    "refracture1_date",
    "refracture2_site",
    "refracture2_date",
    "refracture3_site",
    "refracture3_date",
)
# Canonical CSV columns after the 43 of dataset.md, in the order they were added (issue 19).
ADDED_FIELDS = (
    "fracture_type",
    "frax_hip_percent",
    "frax_with_bmd",
    "nogg_risk_category",
    *FALLS_RISK_FIELDS,
    *REFRACTURE_DETAIL_FIELDS,
)
# The patient, for direct care (dataset.md, "Patient, for direct care"): optional,
# patient-identifiable, never in the FLS-DB format or on public pages. In the canonical CSV they
# follow the 35 FLS-DB-based columns, in this order.
DIRECT_CARE_FIELDS = (
    "given_name",
    "family_name",
    "hospital_number",
    "phone",
    "gp_practice",
    "gp_practice_code",
    "preferred_language",
    "interpreter_needed",
)

# Episode fields by journey stage, in the order of dataset.md.
STAGES = {
    "identification": (
        "fracture_date",
        "identification_date",
        "admitted",
        "fracture_sites",
        "fracture_type",
    ),
    "assessment": (
        "assessment_date",
        "height_cm",
        "weight_kg",
        "previous_fracture",
        "parental_hip_fracture",
        "smoker",
        "on_bone_therapy_at_fracture",
        "dxa_status",
        "dxa_not_recommended_reason",
        "dxa_date",
        "t_score",
        "frax_major_percent",
        "frax_hip_percent",
        "frax_with_bmd",
        "nogg_risk_category",
        "falls_assessed",
        *FALLS_RISK_FIELDS,
        "falls_referred",
    ),
    "treatment": ("bone_therapy", "calcium_vitd"),
    "followup16": ("followup16_done", "followup16_date", "therapy16", "strength_balance16"),
    "followup52": (
        "followup52_done",
        "followup52_date",
        "therapy52",
        "refracture",
        *REFRACTURE_DETAIL_FIELDS,
    ),
}
STAGE_TITLES = {
    "identification": "Identification",
    "assessment": "Assessment",
    "treatment": "Treatment recommendation",
    "followup16": "Monitoring at 12-16 weeks",
    "followup52": "Follow-up at 12 months",
}
EPISODE_FIELDS = tuple(field for fields in STAGES.values() for field in fields)
# The 29 episode fields of dataset.md's first 35 columns, in their order.
DATASET_EPISODE_FIELDS = tuple(field for field in EPISODE_FIELDS if field not in ADDED_FIELDS)

# Canonical CSV column order (dataset.md, "Columns"): the 35 FLS-DB-based columns, the eight
# direct-care ones (columns 36-43), then the fields added later, in the order they were added.
CSV_COLUMNS = (
    ("service_code",) + PATIENT_FIELDS + DATASET_EPISODE_FIELDS + DIRECT_CARE_FIELDS + ADDED_FIELDS
)

# FLS-DB question codes (dataset version 3).
FLSDB_CODES = {
    "1.01": "nhs_number",
    "1.02": "date_of_birth",
    "1.03": "sex",
    "1.04": "postcode",
    "1.05": "care_home_resident",
    "1.06": "identification_date",
    "1.07": "assessment_date",
    "1.08": "admitted",
    "1.09": "fracture_date",
    "1.11": "fracture_sites",
    "1.12": "fracture_sites",
    "1.13": "fracture_sites",
    "2.01": "height_cm",
    "2.02": "weight_kg",
    "2.03": "previous_fracture",
    "2.04": "parental_hip_fracture",
    "2.05": "smoker",
    "2.06": "on_bone_therapy_at_fracture",
    "3.01": "dxa_status",
    "3.02": "dxa_not_recommended_reason",
    "3.03": "dxa_date",
    "3.04": "t_score",
    "3.05": "frax_major_percent",
    "4.01": "bone_therapy",
    "4.02": "calcium_vitd",
    "5.01": "falls_assessed",
    "5.10": "falls_referred",
    "6.01": "followup16_done",
    "6.02": "followup16_date",
    "6.05": "therapy16",
    "6.06": "strength_balance16",
    "7.01": "followup52_done",
    "7.02": "followup52_date",
    "7.05": "therapy52",
    "7.06": "refracture",
    # Added with issue 19.
    "1.10": "fracture_type",
    "3.06": "frax_hip_percent",
    "3.07": "frax_with_bmd",
    "3.08": "nogg_risk_category",
    "5.02": "falls_two_or_more",
    "5.03": "fear_of_falling",
    "5.04": "falls_risk_medicines",
    "5.05": "mobility_before_fracture",
    "5.06": "visual_impairment",
    "5.07": "toileting_problems",
    "5.08": "cardiovascular_abnormal",
    "5.09": "cognitive_impairment",
    "7.07": "refracture_count",
    "7.08": "refracture1_site",
    "7.09": "refracture1_date",
    "7.10": "refracture2_site",
    "7.11": "refracture2_date",
    "7.12": "refracture3_site",
    "7.13": "refracture3_date",
}

# The 17 audited fields of KPI 1 (data completeness).
AUDITED_FIELDS = (
    "sex",
    "postcode",
    "care_home_resident",
    "identification_date",
    "admitted",
    "fracture_sites",
    "assessment_date",
    "previous_fracture",
    "smoker",
    "on_bone_therapy_at_fracture",
    "dxa_status",
    "falls_assessed",
    "bone_therapy",
    "calcium_vitd",
    "followup16_done",
    "strength_balance16",
    "followup52_done",
)

# Allowed values of each single-choice field.
CHOICES = {
    "sex": SEXES,
    "care_home_resident": YES_NO_UNKNOWN,
    "admitted": YES_NO_UNKNOWN,
    "previous_fracture": YES_NO_UNKNOWN,
    "parental_hip_fracture": YES_NO_UNKNOWN,
    "smoker": SMOKER,
    "on_bone_therapy_at_fracture": YES_NO_UNKNOWN,
    "dxa_status": DXA_STATUS,
    "dxa_not_recommended_reason": DXA_NOT_RECOMMENDED_REASONS,
    "falls_assessed": YES_NO_UNKNOWN,
    "falls_referred": YES_NO_UNKNOWN,
    "calcium_vitd": YES_NO_UNKNOWN,
    "followup16_done": YES_NO_UNKNOWN,
    "therapy16": FOLLOWUP_THERAPY,
    "strength_balance16": YES_NO_UNKNOWN,
    "followup52_done": YES_NO_UNKNOWN,
    "therapy52": FOLLOWUP_THERAPY,
    "refracture": YES_NO_UNKNOWN,
    # Added with issue 19.
    "fracture_type": FRACTURE_TYPES,
    "frax_with_bmd": FRAX_BMD,
    "nogg_risk_category": NOGG_RISK_CATEGORIES,
    **dict.fromkeys(FALLS_RISK_FIELDS, YES_NO_UNKNOWN),
    "mobility_before_fracture": MOBILITY,
    "refracture1_site": FRACTURE_SITES,
    "refracture2_site": FRACTURE_SITES,
    "refracture3_site": FRACTURE_SITES,
    "interpreter_needed": YES_NO_UNKNOWN,
}
MULTI_VALUE_FIELDS = ("fracture_sites", "bone_therapy")
DATE_FIELDS = (
    "date_of_birth",
    "date_of_death",
    "fracture_date",
    "identification_date",
    "assessment_date",
    "dxa_date",
    "followup16_date",
    "followup52_date",
    "refracture1_date",
    "refracture2_date",
    "refracture3_date",
)
# (minimum, maximum, decimals allowed)
NUMBER_FIELDS = {
    "height_cm": (100, 230, 1),
    "weight_kg": (25, 250, 1),
    "t_score": (-7, 4, 1),
    "frax_major_percent": (0, 100, 1),
    "frax_hip_percent": (0, 100, 1),
    "refracture_count": (1, 20, 0),
}

LABELS = {
    "service_code": "Service code",
    "nhs_number": "NHS number",
    "date_of_birth": "Date of birth",
    "sex": "Sex",
    "postcode": "Postcode",
    "care_home_resident": "Care home resident",
    "date_of_death": "Date of death",
    "fracture_date": "Date the fracture was diagnosed",
    "identification_date": "Date of first FLS contact",
    "admitted": "Admitted to hospital",
    "fracture_sites": "Fracture sites",
    "assessment_date": "Date of FLS assessment",
    "height_cm": "Height (cm)",
    "weight_kg": "Weight (kg)",
    "previous_fracture": "Previous fracture",
    "parental_hip_fracture": "Parent had a hip fracture",
    "smoker": "Smoker",
    "on_bone_therapy_at_fracture": "On bone therapy at the time of fracture",
    "dxa_status": "DXA",
    "dxa_not_recommended_reason": "Reason DXA not recommended",
    "dxa_date": "Date of DXA",
    "t_score": "T-score",
    "frax_major_percent": "FRAX major osteoporotic fracture risk (%)",
    "falls_assessed": "Falls risk assessed by the FLS",
    "falls_referred": "Referred for a falls assessment",
    "bone_therapy": "Bone therapy recommended",
    "calcium_vitd": "Calcium and vitamin D recommended",
    "followup16_done": "Monitoring contact at 12-16 weeks done",
    "followup16_date": "Date of 12-16 week contact",
    "therapy16": "Bone therapy at 12-16 weeks",
    "strength_balance16": "Started strength and balance exercise",
    "followup52_done": "Follow-up at 12 months done",
    "followup52_date": "Date of 12 month follow-up",
    "therapy52": "Bone therapy at 12 months",
    "refracture": "New fracture since the index fracture",
    # Added with issue 19.
    "fracture_type": "Type of fracture",
    "frax_hip_percent": "FRAX hip fracture risk (%)",
    "frax_with_bmd": "FRAX worked out",
    "nogg_risk_category": "NOGG risk category",
    "falls_two_or_more": "Two or more falls in the last year",
    "fear_of_falling": "Fear of falling",
    "falls_risk_medicines": "Takes medicines that raise the risk of falls",
    "mobility_before_fracture": "Mobility before the fracture",
    "visual_impairment": "Visual impairment",
    "toileting_problems": "Problems with toileting or continence",
    "cardiovascular_abnormal": "Abnormal cardiovascular assessment",
    "cognitive_impairment": "Cognitive impairment",
    "refracture_count": "Number of new fractures since the index fracture",
    "refracture1_site": "Site of the first new fracture",
    "refracture1_date": "Date of the first new fracture",
    "refracture2_site": "Site of the second new fracture",
    "refracture2_date": "Date of the second new fracture",
    "refracture3_site": "Site of the third new fracture",
    "refracture3_date": "Date of the third new fracture",
    # For direct care
    "given_name": "Given name",
    "family_name": "Family name",
    "hospital_number": "Hospital number",
    "phone": "Telephone",
    "gp_practice": "GP practice",
    "gp_practice_code": "GP practice code",
    "preferred_language": "Preferred language",
    "interpreter_needed": "Interpreter needed",
}

# Spellings found in old exports that mean "Not known" wherever Not known is allowed
# (dataset.md, "Values"); compared after case-folding. "Donít" is the curly apostrophe
# read through the wrong code page, "Don\ufffdt" the same byte lost in decoding.
NOT_KNOWN_SYNONYMS = (
    "don't know",
    "don\u2019t know",
    "don\u2018t know",
    "don\u00edt know",
    "don\ufffdt know",
    "dont know",
    "unknown",
)
# Short forms accepted by Yes/No fields.
YES_NO_SHORTHANDS = {"y": "Yes", "1": "Yes", "n": "No", "0": "No"}
# FLS-DB's 2023 site accepted as the same as ours (compared after case-folding).
FRACTURE_SITE_SYNONYMS = {"non hip/non spine": "Other"}
MAX_FRACTURE_SITES = 3

# Who is in the audit: 50 or over at the index fracture, diagnosed on or after 1 January 2016.
AUDIT_START_DATE = date(2016, 1, 1)
MINIMUM_AGE = 50
MAXIMUM_AGE = 115

# Worklist windows, in days since fracture_date (dataset.md, "Worklists"); inclusive.
ASSESSMENT_DUE_DAYS = 90
FOLLOWUP16_WINDOW_DAYS = (84, 112)
FOLLOWUP52_WINDOW_DAYS = (336, 392)

# The KPIs' due dates (kpis.md, "Terms"): a step is due once fracture_date + N days <= as_of. The
# 16- and 52-week ones are the ends of the follow-up windows above (112 days, 392 days).
DUE_AT_90_DAYS = ASSESSMENT_DUE_DAYS
DUE_AT_16_WEEKS_DAYS = FOLLOWUP16_WINDOW_DAYS[1]
DUE_AT_52_WEEKS_DAYS = FOLLOWUP52_WINDOW_DAYS[1]
