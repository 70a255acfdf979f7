"""Helpers for the CSV import and export tests: valid NHS numbers and canonical rows."""

from __future__ import annotations

from kpis.dataset import CSV_COLUMNS


def nhs_number(seed: int) -> str:
    """A valid NHS number (modulus 11) made from a seed, never one repeated digit."""
    base = 400000000 + seed * 7
    while True:
        digits = f"{base:09d}"
        total = sum(int(d) * w for d, w in zip(digits, range(10, 1, -1), strict=True))
        check = 11 - total % 11
        check = 0 if check == 11 else check
        if check != 10 and len(set(digits + str(check))) > 1:
            return digits + str(check)
        base += 1


def row(**values: str) -> dict[str, str]:
    """A canonical row of a valid new episode; keyword arguments override cells."""
    cells = {
        "service_code": "BRD",
        "nhs_number": nhs_number(1),
        "date_of_birth": "1940-03-12",
        "sex": "Female",
        "postcode": "SW1A 2AA",
        "care_home_resident": "No",
        "fracture_date": "2024-03-01",
        "identification_date": "2024-03-05",
        "admitted": "Yes",
        "fracture_sites": "Hip",
        "assessment_date": "2024-04-01",
        "dxa_status": "Recommended",
        "dxa_date": "2024-05-01",
        "t_score": "-2.5",
        "bone_therapy": "Alendronate",
    }
    cells.update(values)
    return cells


def later_row(fracture_date: str, **values: str) -> dict[str, str]:
    """A valid row of another fracture of the patient: its stage dates left empty."""
    empty = {f: "" for f in ("identification_date", "assessment_date", "dxa_date", "t_score")}
    return row(**(empty | {"dxa_status": "Not known", "fracture_date": fracture_date} | values))


def csv_text(rows: list[dict[str, str]], columns=CSV_COLUMNS, line_end="\n") -> str:
    """Rows as CSV text with the given header (quoting cells holding commas or quotes)."""

    def cell(value: str) -> str:
        if any(c in value for c in ',"\n'):
            return '"' + value.replace('"', '""') + '"'
        return value

    lines = [",".join(columns)]
    lines += [",".join(cell(r.get(c, "")) for c in columns) for r in rows]
    return line_end.join(lines) + line_end
