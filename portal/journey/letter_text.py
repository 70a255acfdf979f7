"""The words of the letters (issue 18), made from what was recorded: the fracture, the
assessment and DXA, FRAX where recorded, the recommended treatment with calcium and vitamin D,
the falls referral, and the monitoring plan with the dates of the 16-week and 12-month contacts.

The GP letter is for a clinician. The patient letter is in plain English: short sentences and
everyday words (a test holds its Flesch reading ease at 60 or above).
"""

from __future__ import annotations

from datetime import date

from kpis import dataset as ds
from portal.journey.rules import split_values, stage_windows, uk_date
from portal.models import Episode, Service


def _day(value: date) -> str:
    return f"{value.day} {value.strftime('%B %Y')}"


def _sites(episode: Episode) -> str:
    sites = [site.lower() for site in split_values(episode.fracture_sites)]
    if not sites:
        return "a bone"
    return sites[0] if len(sites) == 1 else ", ".join(sites[:-1]) + " and " + sites[-1]


def _drugs(episode: Episode) -> list[str]:
    return [part for part in split_values(episode.bone_therapy) if part in ds.DRUGS]


def _number(value: float) -> str:
    return f"{value:g}"


def gp_letter(episode: Episode, service: Service) -> str:
    """The letter to the patient's GP: what was found and what the FLS recommends."""
    from portal.journey.letters import patient_line

    windows = stage_windows(episode.fracture_date)
    lines = [
        "Dear Doctor,",
        "",
        f"Re: {patient_line(episode)}",
        "",
        f"Your patient was seen by {service.name} after a fragility fracture of the "
        f"{_sites(episode)}, diagnosed on {_day(episode.fracture_date)}"
        + (" (admitted to hospital)." if episode.admitted == "Yes" else "."),
    ]
    lines += ["", "Assessment"]
    if episode.assessment_date:
        found = [f"Assessed by the FLS on {_day(episode.assessment_date)}."]
        for field, words in (
            ("previous_fracture", "Previous fracture"),
            ("parental_hip_fracture", "Parental hip fracture"),
            ("smoker", "Smoker"),
            ("on_bone_therapy_at_fracture", "On bone therapy at the time of the fracture"),
        ):
            value = getattr(episode, field)
            if value:
                found.append(f"{words}: {value.lower() if value != 'Not known' else 'not known'}.")
        lines.append(" ".join(found))
    else:
        lines.append("The FLS assessment is not yet recorded.")
    lines += ["", "Bone density (DXA)", _gp_dxa(episode)]
    if episode.frax_major_percent is not None:
        lines.append(
            "FRAX 10-year probability of a major osteoporotic fracture: "
            f"{_number(episode.frax_major_percent)}%."
        )
    lines += ["", "Recommended treatment", _gp_treatment(episode)]
    lines += ["", "Falls", _gp_falls(episode)]
    lines += [
        "",
        "Monitoring",
        "We will contact the patient at 12 to 16 weeks, between "
        f"{_day(windows['followup16_opens'])} and {_day(windows['followup16_closes'])}, and at "
        f"12 months, between {_day(windows['followup52_opens'])} and "
        f"{_day(windows['followup52_closes'])}, to ask whether treatment has started and is "
        "being taken, about side effects and about falls. We will write again if anything "
        "changes.",
    ]
    if _drugs(episode):
        lines += ["", "Please prescribe the recommended treatment and review it as usual."]
    lines += ["", "Yours sincerely,"]
    return "\n".join(lines)


def _gp_dxa(episode: Episode) -> str:
    if episode.dxa_status == "Recommended" and episode.dxa_date:
        text = f"DXA done on {_day(episode.dxa_date)}"
        if episode.t_score is not None:
            text += f", lowest T-score {episode.t_score:.1f}"
        return text + "."
    if episode.dxa_status == "Recommended":
        return "DXA recommended; not yet done. We will send the result when we have it."
    if episode.dxa_status == "Not recommended":
        reason = episode.dxa_not_recommended_reason
        return "DXA not recommended" + (f" ({reason.lower()})." if reason else ".")
    return "DXA not recorded."


def _gp_treatment(episode: Episode) -> str:
    drugs = _drugs(episode)
    parts = split_values(episode.bone_therapy)
    if drugs:
        text = "Bone therapy recommended: " + ", ".join(drugs) + "."
    elif parts:
        text = f"No bone therapy recommended: {parts[0].lower()}."
    else:
        text = "The treatment recommendation is not yet recorded."
    if episode.calcium_vitd == "Yes":
        text += " Calcium and vitamin D supplements recommended."
    elif episode.calcium_vitd == "No":
        text += " Calcium and vitamin D supplements not recommended."
    return text


def _gp_falls(episode: Episode) -> str:
    assessed = {
        "Yes": "Falls risk assessed by the FLS.",
        "No": "Falls risk not assessed by the FLS.",
    }.get(episode.falls_assessed or "", "")
    referred = {
        "Yes": "Referred for a falls assessment.",
        "No": "Not referred for a falls assessment.",
    }.get(episode.falls_referred or "", "Falls referral not recorded.")
    return " ".join(part for part in (assessed, referred) if part)


def patient_letter(episode: Episode, service: Service) -> str:
    """The letter to the patient, in plain English."""
    patient = episode.patient
    windows = stage_windows(episode.fracture_date)
    drugs = _drugs(episode)
    lines = [
        f"Dear {patient.name}," if patient.name else "Dear patient,",
        "",
        f"You broke a bone on {_day(episode.fracture_date)}. We are the fracture team at "
        f"{service.name}. Our job is to help keep your bones strong. We want to stop you "
        "breaking a bone again.",
        "",
    ]
    if episode.dxa_status == "Recommended" and episode.dxa_date:
        lines.append(
            f"You had a bone scan on {_day(episode.dxa_date)}. It helps us see how strong your bones are."
        )
    elif episode.dxa_status == "Recommended":
        lines.append("We have asked for a bone scan for you. The hospital will send you a date.")
    if drugs:
        names = " and ".join(drug.lower() for drug in drugs)
        lines.append(
            f"We think a medicine called {names} will help to make your bones stronger. We "
            "have asked your GP to give it to you. Please take it as your GP or chemist tells you."
        )
    else:
        lines.append("We have not asked for a bone medicine for you at this time.")
    if episode.calcium_vitd == "Yes":
        lines.append(
            "Please also take calcium and vitamin D each day. They help keep your bones strong."
        )
    if episode.falls_referred == "Yes":
        lines.append(
            "We have asked a falls team to see you. They can help you stay safe on your feet. They will get in touch."
        )
    lines += [
        "",
        f"We will call you between {_day(windows['followup16_opens'])} and "
        f"{_day(windows['followup16_closes'])} to see how you are. We will call you again "
        f"between {_day(windows['followup52_opens'])} and {_day(windows['followup52_closes'])}.",
        "",
    ]
    phone = service.letter_telephone
    lines.append(
        f"If you have any questions, please call us on {phone}."
        if phone
        else "If you have any questions, please call the fracture team."
    )
    lines += ["", "Yours sincerely,"]
    return "\n".join(lines)


__all__ = ["gp_letter", "patient_letter", "uk_date"]
