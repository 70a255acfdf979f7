"""The synthetic patients as people (issue 18): invented names, hospital numbers, telephone
numbers, GP practices and languages that cannot be mistaken for real ones. Telephone numbers come
from Ofcom's ranges kept for drama (01632 960xxx and 07700 900xxx), hospital numbers start with
DEMO, GP practice codes with Z99, and the NHS numbers (people.py) are in the 999 test range."""

from __future__ import annotations

import random
from itertools import count

from portal.journey.rules.direct_care import fold_name
from portal.operations.synthetic.people import Row, pick

GIVEN_NAMES = {
    "Female": (
        "Ada",
        "Beryl",
        "Cora",
        "Dilys",
        "Edna",
        "Freya",
        "Gwen",
        "Hazel",
        "Ivy",
        "Jean",
        "Kathleen",
        "Lorna",
        "Mair",
        "Nora",
        "Olive",
        "Peggy",
        "Rhian",
        "Siobhan",
        "Thea",
        "Zoë",
    ),
    "Male": (
        "Albert",
        "Bryn",
        "Cyril",
        "Dafydd",
        "Ernest",
        "Frank",
        "Gareth",
        "Harold",
        "Idris",
        "Jack",
        "Kenneth",
        "Leonard",
        "Malcolm",
        "Niall",
        "Owen",
        "Percy",
        "Ronald",
        "Seán",
    ),
}
# Invented family names: ordinary-looking, in no directory (two made-up halves joined).
_FIRST_HALVES = (
    "Ash",
    "Brack",
    "Cal",
    "Dun",
    "Elm",
    "Fen",
    "Gar",
    "Hol",
    "Ird",
    "Kes",
    "Lind",
    "Mor",
    "Nor",
    "Oak",
    "Pen",
    "Quar",
    "Rook",
    "Sel",
    "Thorn",
    "Wex",
    "Yar",
    "Ørn",
    "Mül",
)
_SECOND_HALVES = (
    "bury",
    "combe",
    "dale",
    "field",
    "ford",
    "gate",
    "holme",
    "lake",
    "ley",
    "mere",
    "ridge",
    "stead",
    "thwaite",
    "ton",
    "wick",
    "worth",
    "ér",
)
_PRACTICES = (
    "Riverside",
    "Castle View",
    "Meadowbank",
    "Harbour Lane",
    "Old Mill",
    "Station Road",
    "Hillcrest",
    "Willow Green",
    "Abbey Fields",
    "Church Street",
)
LANGUAGES = {
    "English": 88.0,
    "Welsh": 4.0,
    "Polish": 2.5,
    "Urdu": 2.0,
    "Punjabi": 1.5,
    "Irish": 1.0,
}


class People:
    """Direct-care details for each synthetic patient; hospital numbers never repeat."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.numbers = count(rng.randrange(100000, 200000))

    def add(self, row: Row) -> Row:
        rng = self.rng
        pool = GIVEN_NAMES["Male" if row["sex"] == "Male" else "Female"]
        given = rng.choice(pool)
        family = rng.choice(_FIRST_HALVES) + rng.choice(_SECOND_HALVES)
        phones = [f"01632 960{rng.randrange(1000):03d}"]
        if rng.random() < 0.5:
            phones.append(f"07700 900{rng.randrange(1000):03d}")
        practice = rng.randrange(len(_PRACTICES))
        language = pick(rng, LANGUAGES)
        row.update(
            given_name=given,
            family_name=family,
            hospital_number=f"DEMO{next(self.numbers)}",
            phone="; ".join(phones),
            gp_practice=f"{_PRACTICES[practice]} Surgery",
            gp_practice_code=f"Z99{practice:03d}",
            preferred_language=language,
            interpreter_needed=(
                "Yes" if language not in ("English", "Welsh") and rng.random() < 0.6 else "No"
            ),
            given_name_search=fold_name(given),
            family_name_search=fold_name(family),
        )
        return row
