"""What moves each KPI in practice: the annual report's recommendations for amber and red KPIs.

Drawn from FLS-DB's published improvement advice and the Royal Osteoporosis Society's clinical
standards for fracture liaison services; short enough for a lead to take to a board.
"""

from __future__ import annotations

RECOMMENDATIONS: dict[int, tuple[str, ...]] = {
    1: (
        "Name one person who checks the worklist of incomplete records every week.",
        "Record 'Not known' rather than leaving a field empty when the answer cannot be found.",
        "Import the 16-week and 12-month follow-ups as they happen rather than at year end.",
    ),
    2: (
        "Find fractures from every source: emergency department, fracture clinic, radiology "
        "reports (including incidental vertebral fractures) and inpatient wards, not only one list.",
        "Agree an electronic feed or weekly report of fracture codes with the hospital's "
        "information team.",
        "Check the expected caseload with the commissioners: an outdated figure distorts KPI 2.",
    ),
    3: (
        "Ask radiology to flag vertebral fractures in reports with standard wording, and search "
        "reports for it every week.",
        "Include CT and chest X-ray reports, where most incidental vertebral fractures are seen.",
    ),
    4: (
        "Offer assessment clinics within 12 weeks of the fracture, with telephone and virtual "
        "slots for patients who cannot travel.",
        "Triage new identifications weekly so the oldest are assessed first.",
        "Use the 'awaiting assessment' worklist to catch patients near day 90.",
    ),
    5: (
        "Book the DXA at the assessment visit, or request it at identification where a protocol "
        "allows.",
        "Agree a ring-fenced number of DXA slots a week for FLS patients with the imaging department.",
        "Chase requested scans not done by day 60 from the 'DXA recommended, not done' worklist.",
    ),
    6: (
        "Ask the falls history questions at every assessment and record the answer.",
        "Agree a direct referral route to the local falls service so a referral is one step.",
    ),
    7: (
        "Use a treatment protocol (NOGG guidance) so the FLS can recommend bone therapy at "
        "assessment without waiting for another clinic.",
        "Record the reason whenever no drug is recommended, so the decision can be audited.",
    ),
    8: (
        "Give every non-hip patient a strength and balance exercise leaflet and a referral at "
        "assessment.",
        "Ask about exercise at the 16-week contact and record the answer.",
    ),
    9: (
        "Book the 12-16 week monitoring contact at the assessment, and run it by telephone.",
        "Work the '16-week contact' worklist every week, from the episodes nearest day 112.",
    ),
    10: (
        "At the 16-week contact confirm the drug was started; if not, find out why and help "
        "(prescription not issued, side effects, dental concerns).",
        "Send the GP a clear recommendation letter that names the drug, dose and duration.",
        "Offer a zoledronate or denosumab pathway for patients who cannot take oral tablets.",
    ),
    11: (
        "Contact every patient at 12 months to check they are still taking treatment, and record it.",
        "Address side effects and how to take oral bisphosphonates at each contact.",
        "Agree with primary care who reviews treatment beyond the first year.",
    ),
}


def recommendations_for(kpi_number: int) -> tuple[str, ...]:
    """The recommendations for one KPI (1-11)."""
    return RECOMMENDATIONS[kpi_number]
