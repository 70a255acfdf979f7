"""The one CSV writer (kpis/csv_output.py): text cells that a spreadsheet would run are neutralised,
numbers stay numbers (security.md; dataset.md, "Export")."""

from __future__ import annotations

import ast
import csv
import io
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import pytest

from kpis.csv_output import csv_text, safe_cell

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "text",
    [
        '=HYPERLINK("http://evil.example/","click")',
        "+44 7700 900123",
        "-1+2",
        "@SUM(A1:A9)",
        "\t=1+1",
        "\r=1+1",
        "-",
        "=",
    ],
)
def test_text_that_a_spreadsheet_would_run_is_neutralised(text):
    assert safe_cell(text) == "'" + text


@pytest.mark.parametrize("value", ["-1.7", "-2.0", "+3", "165", "0.25", "-0", "Wrist", "a=b", ""])
def test_numbers_and_plain_text_are_kept(value):
    assert safe_cell(value) == value


@pytest.mark.parametrize("value", [-1.7, 3, Decimal("-2.5"), Fraction(1, 2)])
def test_number_values_stay_numbers(value):
    assert safe_cell(value) == value


def test_none_is_an_empty_cell_and_a_whole_file_reads_back():
    text = csv_text(["name", "t_score"], [["=cmd|' /C calc'!A0", -1.7], [None, "-2.0"]])
    rows = list(csv.reader(io.StringIO(text)))
    assert rows == [["name", "t_score"], ["'=cmd|' /C calc'!A0", "-1.7"], ["", "-2.0"]]
    assert "\r" not in text


def test_no_module_writes_csv_but_the_one_writer():
    """Every CSV the portal emits goes through kpis/csv_output.py."""
    writers = []
    for path in [*ROOT.glob("portal/**/*.py"), *ROOT.glob("kpis/**/*.py")]:
        if path.name == "csv_output.py":
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id == "csv"
                and node.attr in ("writer", "DictWriter")
            ):
                writers.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not writers, writers
