"""The dataset rules (spec/dataset.md) at their valid and invalid edges."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kpis.dataset import AUDITED_FIELDS, CHOICES, DRUGS, FRACTURE_SITES, LABELS, STAGES
from portal.journey.rules import (
    ValueProblem,
    age_on,
    aom_recommended,
    check_patient_dates,
    check_record,
    clean_nhs_number,
    format_value,
    missing_audited_fields,
    normalise_postcode,
    on_aom,
    parse_value,
    parse_values,
    stage_status,
    stage_windows,
)

TODAY = date(2025, 6, 1)
FRACTURE = date(2024, 3, 12)


def patient(**values):
    return {
        "nhs_number": "9434765919",
        "date_of_birth": date(1950, 1, 1),
        "sex": "Female",
        **values,
    }


def episode(**values):
    return {"fracture_date": FRACTURE, "fracture_sites": "Hip", **values}


def problems(patient_values=None, episode_values=None, today=TODAY):
    return check_record(patient(**(patient_values or {})), episode(**(episode_values or {})), today)


def refused(field, raw):
    with pytest.raises(ValueProblem) as caught:
        parse_value(field, raw)
    return str(caught.value)


# NHS number ----------------------------------------------------------------------------------


@pytest.mark.parametrize("raw", ["9434765919", "943 476 5919", "943-476-5919", " 9434765919\u00a0"])
def test_nhs_number_valid_with_spaces_and_dashes(raw):
    assert clean_nhs_number(raw) == "9434765919"
    assert parse_value("nhs_number", raw) == "9434765919"


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ("9991234560", "check digit"),
        ("943476591", "10 digits"),
        ("94347659190", "10 digits"),
        ("94347659A9", "only digits"),
        ("0000000000", "one digit repeated"),
        ("1111111111", "one digit repeated"),
    ],
)
def test_nhs_number_refused(raw, words):
    with pytest.raises(ValueProblem) as caught:
        clean_nhs_number(raw)
    assert words in str(caught.value)
    assert str(caught.value).startswith("NHS number")


def test_nhs_number_whose_check_digit_would_be_ten_is_refused():
    # 123456713 weighs to a remainder of 1: no check digit exists, every tenth digit fails.
    for last in "0123456789":
        with pytest.raises(ValueProblem):
            clean_nhs_number("123456713" + last)


def _with_check_digit(first_nine: str) -> str | None:
    total = sum(int(d) * w for d, w in zip(first_nine, range(10, 1, -1), strict=True))
    check = (11 - total % 11) % 11
    return None if check == 10 else first_nine + str(check)


@given(st.text(alphabet="0123456789", min_size=9, max_size=9))
def test_any_number_with_a_correct_check_digit_is_accepted(first_nine):
    number = _with_check_digit(first_nine)
    if number is None or len(set(number)) == 1:
        with pytest.raises(ValueProblem):
            clean_nhs_number(first_nine + "0")
        return
    assert clean_nhs_number(f"{number[:3]} {number[3:6]}-{number[6:]}") == number
    wrong = number[:9] + str((int(number[9]) + 1) % 10)
    with pytest.raises(ValueProblem):
        clean_nhs_number(wrong)


# Postcode ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "stored"),
    [
        ("sw1a2aa", "SW1A 2AA"),
        ("SW1A 2AA", "SW1A 2AA"),
        ("  sw1a   2aa ", "SW1A 2AA"),
        ("ex76zy", "EX7 6ZY"),
        ("BT6 2SF", "BT6 2SF"),
        ("m11aa", "M1 1AA"),
        ("cr26xh", "CR2 6XH"),
        ("W1A0AX", "W1A 0AX"),
    ],
)
def test_postcode_normalised(raw, stored):
    assert normalise_postcode(raw) == stored
    assert parse_value("postcode", raw) == stored


@pytest.mark.parametrize("raw", ["SW1A", "12345", "SW1A 2A", "SW1A-2AA!", "ABC 123", "S 1AA"])
def test_postcode_refused(raw):
    assert "UK postcode" in refused("postcode", raw)


# Trimming and empty values -------------------------------------------------------------------


@pytest.mark.parametrize("raw", [None, "", "   ", "\u00a0", "\u00a0 \t"])
def test_empty_is_none(raw):
    for field in ("sex", "fracture_date", "height_cm", "bone_therapy", "postcode", "nhs_number"):
        assert parse_value(field, raw) is None


def test_non_breaking_spaces_are_trimmed():
    assert parse_value("sex", "\u00a0Female\u00a0") == "Female"
    assert parse_value("height_cm", "\u00a0165 ") == 165


def test_unknown_field_is_a_programming_error():
    with pytest.raises(KeyError):
        parse_value("shoe_size", "9")


# Dates ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        "2024-03-12",
        "12/03/2024",
        "12/3/2024",
        "2024-03-12 00:00",
        "2024-03-12 00:00:00",
        "2024-03-12T00:00:00",
        "12/03/2024 00:00",
        "12/3/2024 00:00:00",
    ],
)
def test_date_formats(raw):
    assert parse_value("fracture_date", raw) == date(2024, 3, 12)


def test_one_digit_day_and_month():
    assert parse_value("dxa_date", "1/2/2024") == date(2024, 2, 1)


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ("12/03/24", "four-digit year"),
        ("1/2/24", "four-digit year"),
        ("31/02/2024", "real date"),
        ("2023-02-29", "real date"),
        ("2024-13-01", "real date"),
        ("12/03/2024 10:30", "without a time"),
        ("2024-03-12 00:01", "without a time"),
        ("12.03.2024", "must be a date"),
        ("March 2024", "must be a date"),
        ("2024/03/12", "must be a date"),
    ],
)
def test_dates_refused(raw, words):
    message = refused("dxa_date", raw)
    assert words in message
    assert message.startswith("Date of DXA")


def test_29_february_of_a_leap_year_is_a_date():
    assert parse_value("date_of_birth", "29/02/1944") == date(1944, 2, 29)


def test_today_is_the_date_in_london(clock):
    """At 23:30 UTC on 30 June it is already 1 July in London (British Summer Time)."""
    from portal import clock as portal_clock

    clock.move_to(datetime(2026, 6, 30, 23, 30, tzinfo=ZoneInfo("UTC")))
    assert portal_clock.today() == date(2026, 7, 1)
    clock.move_to(datetime(2026, 12, 31, 23, 30, tzinfo=ZoneInfo("UTC")))  # GMT: still 2026
    assert portal_clock.today() == date(2026, 12, 31)


# Numbers -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "raw", "value"),
    [
        ("t_score", "-7.0", -7.0),
        ("t_score", "4.0", 4.0),
        ("t_score", "4", 4.0),
        ("t_score", "-1.70", -1.7),
        ("t_score", "\u22122.5", -2.5),
        ("t_score", "+1.5", 1.5),
        ("t_score", "-0.0", 0.0),
        ("height_cm", "100", 100),
        ("height_cm", "230", 230),
        ("height_cm", "165.5", 165.5),
        ("weight_kg", "25", 25),
        ("weight_kg", "250.0", 250),
        ("frax_major_percent", "0", 0),
        ("frax_major_percent", "100", 100),
        ("frax_major_percent", "12.5", 12.5),
    ],
)
def test_numbers_accepted(field, raw, value):
    assert parse_value(field, raw) == value


@pytest.mark.parametrize(
    ("field", "raw", "words"),
    [
        ("t_score", "-7.1", "between -7.0 and 4.0"),
        ("t_score", "4.1", "between -7.0 and 4.0"),
        ("t_score", "-1.75", "at most one decimal"),
        ("height_cm", "99.9", "between 100 and 230"),
        ("height_cm", "230.1", "between 100 and 230"),
        ("height_cm", "165.25", "at most one decimal"),
        ("weight_kg", "24.9", "between 25 and 250"),
        ("weight_kg", "250.1", "between 25 and 250"),
        ("frax_major_percent", "-0.1", "between 0 and 100"),
        ("frax_major_percent", "100.1", "between 0 and 100"),
        ("height_cm", "165,5", "decimal point, not a comma"),
        ("t_score", "-1,7", "decimal point, not a comma"),
        ("height_cm", "165cm", "without a unit"),
        ("height_cm", "165 cm", "without a unit"),
        ("weight_kg", "70kg", "without a unit"),
        ("frax_major_percent", "12%", "without a unit"),
        ("height_cm", "tall", "must be a number"),
        ("height_cm", "1e2", "must be a number"),
        ("t_score", "--1", "must be a number"),
    ],
)
def test_numbers_refused(field, raw, words):
    assert words in refused(field, raw)


def test_a_number_is_never_rounded():
    assert parse_value("t_score", "-1.7000") == -1.7
    with pytest.raises(ValueProblem):
        parse_value("t_score", "-1.7001")


# Enumerations --------------------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "value"), [("female", "Female"), ("NOT KNOWN", "Not known")])
def test_enumerations_in_any_case(raw, value):
    assert parse_value("sex", raw) == value
    assert parse_value("dxa_status", "not RECOMMENDED") == "Not recommended"


@pytest.mark.parametrize(
    ("raw", "value"),
    [("Y", "Yes"), ("y", "Yes"), ("1", "Yes"), ("N", "No"), ("n", "No"), ("0", "No")],
)
def test_yes_no_shorthands(raw, value):
    for field, allowed in CHOICES.items():
        if allowed == ("Yes", "No", "Not known"):
            assert parse_value(field, raw) == value


def test_shorthands_only_for_yes_no_fields():
    assert "must be one of" in refused("sex", "Y")
    assert "must be one of" in refused("smoker", "1")


@pytest.mark.parametrize(
    "raw",
    [
        "Don't know",
        "don\u2019t know",
        "Don\u00edt know",
        "Dont know",
        "Unknown",
        "UNKNOWN",
        "Not known",
    ],
)
def test_dont_know_means_not_known_wherever_allowed(raw):
    for field in ("sex", "care_home_resident", "smoker", "dxa_status", "therapy16", "therapy52"):
        assert parse_value(field, raw) == "Not known"
    assert parse_value("bone_therapy", raw) == "Not known"


def test_dont_know_refused_where_not_known_is_not_allowed():
    assert "must be one of" in refused("dxa_not_recommended_reason", "Unknown")
    assert "Fracture sites" in refused("fracture_sites", "Don't know")


def test_enumeration_refused_lists_the_allowed_values():
    assert refused("smoker", "Sometimes") == "Smoker must be one of: Current, Ex, Never, Not known"


def test_follow_up_therapy_accepts_drugs_by_approved_name():
    assert parse_value("therapy16", "alendronic acid") == "Alendronate"
    assert parse_value("therapy52", "not started") == "Not started"
    assert "must be one of" in refused("therapy16", "Referred to GP to decide")


# Fracture sites ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "stored"),
    [
        ("Hip", "Hip"),
        ("wrist; hip", "Hip;Wrist"),
        ("Spine;Humerus;Pelvis", "Spine;Humerus;Pelvis"),
        ("Non hip/non spine", "Other"),
        ("Non hip/non spine;NON HIP/NON SPINE", "Other"),
        ("Other;Non hip/non spine", "Other"),
        ("Hip;Non hip/non spine;Non hip/non spine;Wrist", "Hip;Wrist;Other"),
        ("Hip;", "Hip"),
    ],
)
def test_fracture_sites(raw, stored):
    assert parse_value("fracture_sites", raw) == stored


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ("Hip;Hip", "cannot name a site twice (Hip)"),
        ("hip;HIP", "cannot name a site twice (Hip)"),
        ("Other;Other", "cannot name a site twice (Other)"),
        ("Hip;Spine;Wrist;Pelvis", "at most 3 sites"),
        ("Hip;Ankle", "Ankle is not one of"),
        (";", "at least one site"),
    ],
)
def test_fracture_sites_refused(raw, words):
    assert words in refused("fracture_sites", raw)


# Bone therapy --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "stored"),
    [
        ("Romosozumab;Risedronate", "Risedronate;Romosozumab"),
        ("alendronic acid", "Alendronate"),
        ("Risedronate sodium", "Risedronate"),
        ("IBANDRONIC ACID", "Ibandronate"),
        ("zoledronic acid;denosumab", "Zoledronate;Denosumab"),
        ("hrt", "HRT"),
        ("Strontium ranelate", "Strontium ranelate"),
        ("Referred to GP to decide", "Referred to GP to decide"),
        ("informed decline", "Informed decline"),
    ],
)
def test_bone_therapy(raw, stored):
    assert parse_value("bone_therapy", raw) == stored


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ("Alendronate;Not appropriate", "cannot mix a drug with an outcome"),
        ("Informed decline;zoledronic acid", "cannot mix a drug with an outcome"),
        ("Alendronate;Alendronate", "cannot name a drug twice (Alendronate)"),
        ("Alendronate;alendronic acid", "cannot name a drug twice (Alendronate)"),
        ("Not appropriate;Informed decline", "only one outcome"),
        ("Aspirin", "is not a drug"),
        ("Not started", "is not a drug"),
    ],
)
def test_bone_therapy_refused(raw, words):
    message = refused("bone_therapy", raw)
    assert words in message
    assert message.startswith("Bone therapy recommended")


# parse_values --------------------------------------------------------------------------------


def test_parse_values_collects_values_and_problems():
    values, problems_found = parse_values(
        {"sex": "f", "height_cm": "165cm", "fracture_date": "12/03/2024", "csrf_token": "x"}
    )
    assert values == {"fracture_date": FRACTURE}
    assert set(problems_found) == {"sex", "height_cm"}


# Age -----------------------------------------------------------------------------------------


def test_age_on():
    assert age_on(date(1974, 3, 12), date(2024, 3, 12)) == 50
    assert age_on(date(1974, 3, 12), date(2024, 3, 11)) == 49
    assert age_on(date(1972, 2, 29), date(2022, 2, 28)) == 49
    assert age_on(date(1972, 2, 29), date(2022, 3, 1)) == 50
    assert age_on(date(1972, 2, 29), date(2024, 2, 29)) == 52
    assert age_on(date(1972, 2, 29), date(2024, 2, 28)) == 51


def test_age_exactly_50_on_fracture_date_is_valid():
    assert problems({"date_of_birth": date(1974, 3, 12)}) == {}


def test_age_a_day_under_50_is_refused():
    found = problems({"date_of_birth": date(1974, 3, 13)})
    assert "50 or over" in found["date_of_birth"]
    assert "12/03/2024" in found["date_of_birth"]
    assert set(found) == {"date_of_birth"}


def test_born_29_february_turns_50_on_1_march_in_a_common_year():
    born = date(1972, 2, 29)
    assert problems({"date_of_birth": born}, {"fracture_date": date(2022, 3, 1)}) == {}
    found = problems({"date_of_birth": born}, {"fracture_date": date(2022, 2, 28)})
    assert "50 or over" in found["date_of_birth"]


def test_age_115_valid_over_115_refused():
    assert problems({"date_of_birth": date(1909, 3, 12)}) == {}
    found = problems({"date_of_birth": date(1908, 3, 12)})
    assert "over 115" in found["date_of_birth"]


# Required fields -----------------------------------------------------------------------------


def test_required_fields():
    found = check_record({}, {}, TODAY)
    assert set(found) == {"nhs_number", "date_of_birth", "sex", "fracture_date", "fracture_sites"}
    assert found["nhs_number"] == "NHS number is required"
    assert found["fracture_sites"] == "Fracture sites is required"
    assert found["fracture_date"] == "Date the fracture was diagnosed is required"


def test_a_complete_valid_record_has_no_problems():
    found = problems(
        {"postcode": "SW1A 2AA", "care_home_resident": "No", "date_of_death": date(2025, 5, 1)},
        {
            "identification_date": FRACTURE,
            "admitted": "Yes",
            "assessment_date": date(2024, 4, 1),
            "dxa_status": "Recommended",
            "dxa_date": date(2024, 5, 1),
            "t_score": -2.5,
            "bone_therapy": "Alendronate",
            "followup16_done": "Yes",
            "followup16_date": date(2024, 6, 20),
            "followup52_done": "Yes",
            "followup52_date": date(2025, 3, 1),
        },
    )
    assert found == {}


# Fracture date -------------------------------------------------------------------------------


def test_fracture_on_2016_01_01_valid_and_a_day_before_refused():
    born = date(1940, 1, 1)
    assert problems({"date_of_birth": born}, {"fracture_date": date(2016, 1, 1)}) == {}
    found = problems({"date_of_birth": born}, {"fracture_date": date(2015, 12, 31)})
    assert found == {
        "fracture_date": "Date the fracture was diagnosed must be on or after 01/01/2016"
    }


def test_fracture_today_valid_tomorrow_refused():
    assert problems(episode_values={"fracture_date": TODAY}) == {}
    found = problems(episode_values={"fracture_date": TODAY + timedelta(days=1)})
    assert "cannot be in the future" in found["fracture_date"]


# Dates against the fracture date, today and death --------------------------------------------

AFTER_FRACTURE = (
    "identification_date",
    "assessment_date",
    "dxa_date",
    "followup16_date",
    "followup52_date",
)
CONTEXT = {
    "dxa_date": {"dxa_status": "Recommended"},
    "followup16_date": {"followup16_done": "Yes"},
    "followup52_date": {"followup52_done": "Yes"},
}


@pytest.mark.parametrize("field", AFTER_FRACTURE)
def test_date_equal_to_fracture_date_is_valid(field):
    assert problems(episode_values={field: FRACTURE, **CONTEXT.get(field, {})}) == {}


@pytest.mark.parametrize("field", AFTER_FRACTURE)
def test_date_before_fracture_date_refused(field):
    day_before = FRACTURE - timedelta(days=1)
    found = problems(episode_values={field: day_before, **CONTEXT.get(field, {})})
    assert set(found) == {field}
    assert found[field].endswith("cannot be before the fracture was diagnosed (12/03/2024)")


def test_message_example_of_the_spec():
    found = problems(episode_values={"dxa_status": "Recommended", "dxa_date": date(2024, 3, 1)})
    assert (
        found["dxa_date"] == "Date of DXA cannot be before the fracture was diagnosed (12/03/2024)"
    )


@pytest.mark.parametrize("field", AFTER_FRACTURE)
def test_episode_dates_today_valid_future_refused(field):
    assert problems(episode_values={field: TODAY, **CONTEXT.get(field, {})}) == {}
    found = problems(episode_values={field: TODAY + timedelta(days=1), **CONTEXT.get(field, {})})
    assert "cannot be in the future" in found[field]


@pytest.mark.parametrize("field", AFTER_FRACTURE)
def test_episode_dates_not_after_death(field):
    death = date(2024, 6, 1)
    context = CONTEXT.get(field, {})
    assert problems({"date_of_death": death}, {field: death, **context}) == {}
    found = problems({"date_of_death": death}, {field: date(2024, 6, 2), **context})
    assert found == {
        field: f"{LABELS[field]} cannot be after the patient's date of death (01/06/2024)"
    }


def test_fracture_after_death_refused():
    found = problems({"date_of_death": date(2024, 3, 11)})
    assert "date of death (11/03/2024)" in found["fracture_date"]


def test_date_of_death_ordering():
    assert problems({"date_of_death": FRACTURE}) == {}
    found = problems({"date_of_death": date(1949, 12, 31)}, {"fracture_date": date(2016, 1, 1)})
    assert "cannot be before the date of birth (01/01/1950)" in found["date_of_death"]
    found = problems({"date_of_death": TODAY + timedelta(days=1)})
    assert "cannot be in the future" in found["date_of_death"]


def test_date_of_birth_in_the_future():
    found = check_record(patient(date_of_birth=TODAY + timedelta(days=1)), {}, TODAY)
    assert "cannot be in the future" in found["date_of_birth"]


# DXA -----------------------------------------------------------------------------------------


def test_dxa_reason_required_when_not_recommended():
    found = problems(episode_values={"dxa_status": "Not recommended"})
    assert set(found) == {"dxa_not_recommended_reason"}
    assert "required when DXA is Not recommended" in found["dxa_not_recommended_reason"]
    assert (
        problems(
            episode_values={
                "dxa_status": "Not recommended",
                "dxa_not_recommended_reason": "Recent DXA",
            }
        )
        == {}
    )


@pytest.mark.parametrize("status", ["Recommended", "Not known", None])
def test_dxa_reason_must_be_empty_otherwise(status):
    found = problems(
        episode_values={"dxa_status": status, "dxa_not_recommended_reason": "Patient declined"}
    )
    assert "must be empty unless DXA is Not recommended" in found["dxa_not_recommended_reason"]


@pytest.mark.parametrize("status", ["Not recommended", "Not known", None])
def test_dxa_date_only_when_recommended(status):
    values = {"dxa_status": status, "dxa_date": date(2024, 4, 1)}
    if status == "Not recommended":
        values["dxa_not_recommended_reason"] = "Other"
    found = problems(episode_values=values)
    assert set(found) == {"dxa_date"}
    assert "only be given when DXA is Recommended" in found["dxa_date"]


def test_t_score_only_with_dxa_date():
    found = problems(episode_values={"dxa_status": "Recommended", "t_score": -2.0})
    assert set(found) == {"t_score"}
    assert "date of DXA" in found["t_score"]
    assert (
        problems(
            episode_values={
                "dxa_status": "Recommended",
                "dxa_date": date(2024, 4, 1),
                "t_score": -2.0,
            }
        )
        == {}
    )


# Follow-ups ----------------------------------------------------------------------------------


@pytest.mark.parametrize("stage", ["followup16", "followup52"])
def test_followup_date_required_when_done_and_only_then(stage):
    done, when = f"{stage}_done", f"{stage}_date"
    found = problems(episode_values={done: "Yes"})
    assert set(found) == {when}
    assert "required when the follow-up was done" in found[when]
    for answer in ("No", "Not known", None):
        found = problems(episode_values={done: answer, when: date(2024, 7, 1)})
        assert set(found) == {when}
        assert "can only be given when" in found[when]
        assert problems(episode_values={done: answer}) == {}


def test_followup52_strictly_after_followup16():
    base = {"followup16_done": "Yes", "followup52_done": "Yes"}
    first = date(2024, 6, 20)
    same = problems(episode_values={**base, "followup16_date": first, "followup52_date": first})
    assert same == {
        "followup52_date": "Date of 12 month follow-up must be after the date of 12-16 week contact (20/06/2024)"
    }
    later = first + timedelta(days=1)
    assert (
        problems(episode_values={**base, "followup16_date": first, "followup52_date": later}) == {}
    )


def test_every_broken_rule_is_reported():
    found = problems(
        {"date_of_birth": date(1990, 1, 1)},
        {
            "dxa_status": "Not recommended",
            "t_score": -3.0,
            "followup16_done": "Yes",
            "identification_date": date(2020, 1, 1),
        },
    )
    assert set(found) == {
        "date_of_birth",
        "dxa_not_recommended_reason",
        "t_score",
        "followup16_date",
        "identification_date",
    }


# A patient change against all their episodes -------------------------------------------------


def test_check_patient_dates_against_every_episode():
    episodes = [
        episode(fracture_date=date(2020, 5, 1)),
        episode(fracture_date=date(2024, 3, 12), followup16_date=date(2024, 6, 20)),
    ]
    assert check_patient_dates(patient(), episodes, TODAY) == {}
    found = check_patient_dates(patient(date_of_death=date(2024, 6, 19)), episodes, TODAY)
    assert found == {
        "date_of_death": "Date of death cannot be before the date of 12-16 week contact (20/06/2024)"
    }
    assert check_patient_dates(patient(date_of_death=date(2024, 6, 20)), episodes, TODAY) == {}
    # Turning 50 on 2 May 2020 is too late for the first episode only.
    found = check_patient_dates(patient(date_of_birth=date(1970, 5, 2)), episodes, TODAY)
    assert "50 or over" in found["date_of_birth"] and "01/05/2020" in found["date_of_birth"]
    found = check_patient_dates(patient(date_of_birth=date(1904, 1, 1)), episodes, TODAY)
    assert "over 115" in found["date_of_birth"]


def test_check_patient_dates_required_fields():
    assert set(check_patient_dates({}, [], TODAY)) == {"nhs_number", "date_of_birth", "sex"}


# Derived values ------------------------------------------------------------------------------


def test_aom_recommended():
    assert aom_recommended("Alendronate")
    assert aom_recommended("Risedronate;Romosozumab")
    assert not aom_recommended("Not appropriate")
    assert not aom_recommended("Not known")
    assert not aom_recommended(None)
    assert not aom_recommended("")


def test_on_aom():
    for drug in DRUGS:
        assert on_aom(drug)
    for outcome in ("Not started", "No longer appropriate", "Informed decline", "Not known", None):
        assert not on_aom(outcome)


def test_stage_status_identification():
    assert stage_status("identification", {}) == "not started"
    assert stage_status("identification", episode()) == "in progress"
    full = episode(identification_date=FRACTURE, admitted="Not known")
    assert stage_status("identification", full) == "complete"


ASSESSED = {
    "assessment_date": date(2024, 4, 1),
    "previous_fracture": "No",
    "parental_hip_fracture": "Not known",
    "smoker": "Never",
    "on_bone_therapy_at_fracture": "No",
    "falls_assessed": "Yes",
    "falls_referred": "No",
}


def test_stage_status_assessment():
    assert stage_status("assessment", episode()) == "not started"
    assert stage_status("assessment", episode(height_cm=165.0)) == "in progress"
    # A DXA booked but not yet done, no measurements: the assessment itself is complete.
    assert stage_status("assessment", episode(**ASSESSED, dxa_status="Recommended")) == "complete"
    assert stage_status("assessment", episode(**ASSESSED, dxa_status=None)) == "in progress"
    not_recommended = episode(**ASSESSED, dxa_status="Not recommended")
    assert stage_status("assessment", not_recommended) == "in progress"
    not_recommended["dxa_not_recommended_reason"] = "Treat without DXA"
    assert stage_status("assessment", not_recommended) == "complete"
    missing_one = {**ASSESSED, "falls_referred": None}
    assert stage_status("assessment", episode(**missing_one, dxa_status="Not known")) == (
        "in progress"
    )


def test_stage_status_treatment():
    assert stage_status("treatment", episode()) == "not started"
    assert stage_status("treatment", episode(bone_therapy="Alendronate")) == "in progress"
    done = episode(bone_therapy="Not appropriate", calcium_vitd="No")
    assert stage_status("treatment", done) == "complete"


@pytest.mark.parametrize(
    ("stage", "last"), [("followup16", "strength_balance16"), ("followup52", "refracture")]
)
def test_stage_status_followups(stage, last):
    done, when, therapy = f"{stage}_done", f"{stage}_date", STAGES[stage][2]
    assert stage_status(stage, episode()) == "not started"
    assert stage_status(stage, episode(**{done: "No"})) == "complete"
    assert stage_status(stage, episode(**{done: "Not known"})) == "complete"
    assert stage_status(stage, episode(**{done: "Yes"})) == "in progress"
    answered = {done: "Yes", therapy: "Alendronate", last: "No"}
    assert stage_status(stage, episode(**answered)) == "in progress"
    assert stage_status(stage, episode(**answered, **{when: date(2024, 6, 20)})) == "complete"
    assert stage_status(stage, episode(**{therapy: "Not known"})) == "in progress"


def test_stage_status_unknown_stage():
    with pytest.raises(KeyError):
        stage_status("discharge", {})


def test_missing_audited_fields():
    assert missing_audited_fields({}, {}) == list(AUDITED_FIELDS)
    everything = {field: "Not known" for field in AUDITED_FIELDS}
    patient_part = {
        k: v for k, v in everything.items() if k in ("sex", "postcode", "care_home_resident")
    }
    episode_part = {k: v for k, v in everything.items() if k not in patient_part}
    assert missing_audited_fields(patient_part, episode_part) == []
    # A patient field on the episode does not count, and an empty string is missing.
    assert missing_audited_fields({"postcode": ""}, {**episode_part, "sex": "Female"}) == [
        "sex",
        "postcode",
        "care_home_resident",
    ]
    assert len(AUDITED_FIELDS) == 17


def test_stage_windows():
    windows = stage_windows(date(2024, 1, 1))
    assert windows == {
        "day90": date(2024, 3, 31),
        "followup16_opens": date(2024, 3, 25),
        "followup16_closes": date(2024, 4, 22),
        "followup52_opens": date(2024, 12, 2),
        "followup52_closes": date(2025, 1, 27),
    }


# Export spelling -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "text"),
    [
        ("fracture_date", date(2024, 3, 12), "2024-03-12"),
        ("height_cm", 165.0, "165"),
        ("height_cm", 165.5, "165.5"),
        ("weight_kg", 70, "70"),
        ("frax_major_percent", 0.0, "0"),
        ("t_score", -2.0, "-2.0"),
        ("t_score", -0.0, "0.0"),
        ("t_score", 3, "3.0"),
        ("fracture_sites", "Wrist;Hip", "Hip;Wrist"),
        ("fracture_sites", ["Other", "Spine"], "Spine;Other"),
        ("bone_therapy", "Romosozumab; Risedronate", "Risedronate;Romosozumab"),
        ("bone_therapy", "Not known", "Not known"),
        ("nhs_number", "9434765919", "9434765919"),
        ("sex", "Female", "Female"),
        ("postcode", None, ""),
        ("t_score", None, ""),
        ("bone_therapy", "", ""),
    ],
)
def test_format_value(field, value, text):
    assert format_value(field, value) == text


@pytest.mark.parametrize(
    ("field", "raw"),
    [
        ("t_score", "-1.70"),
        ("height_cm", "+165.0"),
        ("fracture_sites", "wrist;Non hip/non spine;hip"),
        ("bone_therapy", "zoledronic acid;Alendronate"),
        ("dxa_date", "1/2/2024 00:00"),
    ],
)
def test_format_then_parse_round_trips(field, raw):
    value = parse_value(field, raw)
    assert parse_value(field, format_value(field, value)) == value


@given(
    st.sampled_from(["t_score", "height_cm", "weight_kg", "frax_major_percent"]),
    st.integers(min_value=-70, max_value=2500),
)
def test_numbers_round_trip_through_export(field, tenths):
    from kpis.dataset import NUMBER_FIELDS

    low, high, _ = NUMBER_FIELDS[field]
    text = f"{tenths / 10:.1f}"
    if not low <= tenths / 10 <= high:
        with pytest.raises(ValueProblem):
            parse_value(field, text)
        return
    value = parse_value(field, text)
    assert parse_value(field, format_value(field, value)) == value


@given(st.lists(st.sampled_from(FRACTURE_SITES), min_size=1, max_size=3, unique=True))
def test_any_order_of_sites_is_stored_in_dataset_order(sites):
    stored = parse_value("fracture_sites", ";".join(sites))
    assert stored.split(";") == [site for site in FRACTURE_SITES if site in sites]


def test_born_after_the_fracture():
    found = problems({"date_of_birth": date(2024, 3, 13)})
    assert found == {
        "date_of_birth": "Date of birth cannot be after the fracture was diagnosed (12/03/2024)"
    }


# Rows of shared/samples/canonical-sample.csv: parsed, checked, and written back cell for cell.
CANONICAL_HEADER = (
    "nhs_number,date_of_birth,sex,postcode,care_home_resident,date_of_death,fracture_date,"
    "identification_date,admitted,fracture_sites,assessment_date,height_cm,weight_kg,"
    "previous_fracture,parental_hip_fracture,smoker,on_bone_therapy_at_fracture,dxa_status,"
    "dxa_not_recommended_reason,dxa_date,t_score,frax_major_percent,falls_assessed,falls_referred,"
    "bone_therapy,calcium_vitd,followup16_done,followup16_date,therapy16,strength_balance16,"
    "followup52_done,followup52_date,therapy52,refracture"
).split(",")
CANONICAL_ROWS = [
    "9992146885,1936-10-12,Female,EX7 6ZY,No,,2025-02-17,2025-02-22,Yes,Other,2025-07-25,170,,"
    "Yes,No,Never,Not known,Recommended,,2025-03-09,-1.2,,No,Yes,Risedronate;Romosozumab,Yes,Yes,"
    "2025-03-06,Not started,No,Yes,2026-02-22,Informed decline,No",
    "9996279723,1937-08-03,Female,CF15 8AE,No,,2024-07-31,2024-08-13,No,Hip;Wrist;Humerus,"
    "2024-10-30,,,No,No,Current,No,Recommended,,2025-02-06,-2.6,,Yes,Yes,Alendronate,No,Yes,"
    "2024-11-21,Not known,Yes,Not known,,,",
]


@pytest.mark.parametrize("row", CANONICAL_ROWS)
def test_a_canonical_row_parses_checks_and_exports_unchanged(row):
    cells = dict(zip(CANONICAL_HEADER, row.split(","), strict=True))
    values, refusals = parse_values(cells)
    assert refusals == {}
    patient_values = {f: v for f, v in values.items() if f in CANONICAL_HEADER[:6]}
    episode_values = {f: v for f, v in values.items() if f not in patient_values}
    assert check_record(patient_values, episode_values, date(2026, 11, 27)) == {}
    # Hip;Wrist;Humerus is written in dataset order: Hip;Humerus;Wrist.
    expected = {**cells, "fracture_sites": format_value("fracture_sites", cells["fracture_sites"])}
    assert {field: format_value(field, value) for field, value in values.items()} == expected
    assert expected["fracture_sites"] in ("Other", "Hip;Humerus;Wrist")


# Where a rule between two fields is reported, given what the user changed ---------------------


def test_a_changed_fracture_date_carries_the_message():
    values = {"assessment_date": date(2024, 3, 1)}
    usual = problems(episode_values=values)
    assert set(usual) == {"assessment_date"}
    found = check_record(patient(), episode(**values), TODAY, changed=["fracture_date"])
    assert found == {
        "fracture_date": "Date the fracture was diagnosed cannot be after the date of FLS "
        "assessment (01/03/2024)"
    }
    # Both changed: the usual field.
    both = check_record(
        patient(), episode(**values), TODAY, changed=["fracture_date", "assessment_date"]
    )
    assert set(both) == {"assessment_date"}


def test_a_changed_followup16_date_carries_the_order_message():
    values = {
        "followup16_done": "Yes",
        "followup16_date": date(2025, 3, 2),
        "followup52_done": "Yes",
        "followup52_date": date(2025, 3, 1),
    }
    found = check_record(patient(), episode(**values), TODAY, changed=STAGES["followup16"])
    assert found == {
        "followup16_date": "Date of 12-16 week contact must be before the date of 12 month "
        "follow-up (01/03/2025)"
    }


def test_a_changed_fracture_date_carries_the_age_and_death_messages():
    born_1974 = patient(date_of_birth=date(1974, 3, 13), date_of_death=date(2024, 3, 1))
    found = check_record(born_1974, episode(), TODAY, changed=STAGES["identification"])
    assert "born 13/03/1974, they were 49 on this date" in found["fracture_date"]
    assert set(found) == {"fracture_date"}
    later_born = patient(date_of_birth=date(2024, 3, 13))
    found = check_record(later_born, episode(), TODAY, changed=["fracture_date"])
    assert found == {
        "fracture_date": "Date the fracture was diagnosed cannot be before the date of birth "
        "(13/03/2024)"
    }


def test_death_order_on_the_date_of_death_when_it_changed():
    found = check_record(
        patient(date_of_death=date(2024, 3, 11)), episode(), TODAY, changed=["date_of_death"]
    )
    assert found == {
        "date_of_death": "Date of death cannot be before the date the fracture was diagnosed "
        "(12/03/2024)"
    }
    found = check_record(
        patient(date_of_death=date(1949, 1, 1)), episode(), TODAY, changed=["date_of_birth"]
    )
    assert found["date_of_birth"] == "Date of birth cannot be after the date of death (01/01/1949)"


@given(st.dates(min_value=date(1000, 1, 1), max_value=date(9999, 12, 31)))
def test_any_date_parses_in_every_accepted_spelling(day):
    for text in (
        day.isoformat(),
        f"{day.day}/{day.month}/{day.year}",
        f"{day:%d/%m/%Y} 00:00",
        f"{day.isoformat()} 00:00:00",
    ):
        assert parse_value("assessment_date", text) == day
    assert parse_value("assessment_date", format_value("assessment_date", day)) == day


def test_derived_values_read_objects_too():
    from types import SimpleNamespace

    record = SimpleNamespace(bone_therapy="Alendronate", calcium_vitd=None, sex="Female")
    assert stage_status("treatment", record) == "in progress"
    assert "calcium_vitd" in missing_audited_fields(record, record)
    assert "sex" not in missing_audited_fields(record, record)


def test_multi_values_from_ticked_checkboxes():
    assert parse_value("fracture_sites", ["Wrist", "Hip"]) == "Hip;Wrist"
    assert parse_value("bone_therapy", ["Denosumab", "Alendronate"]) == "Alendronate;Denosumab"
    assert parse_value("bone_therapy", []) is None
    assert "cannot mix" in refused("bone_therapy", ["Denosumab", "Not appropriate"])
