"""Reading an episode CSV (dataset.md, "CSV: import and export"): encoding, header, rows.

Streams the file from disk so that memory does not grow with its size. Refusals of the whole
file (empty, not CSV, no header, wrong delimiter, two columns for one field) raise FileRefused.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from kpis.dataset import CSV_COLUMNS, FLSDB_CODES

# FLS-DB headers start with the question code followed by a space or nothing (dataset.md).
_QUESTION_CODE = re.compile(r"^(\d\.\d\d)(?:\s|$)")
SITE_CODES = ("1.11", "1.12", "1.13")
_CHUNK = 1 << 20
# Signatures of files that are often uploaded instead of a CSV.
_BINARY_SIGNATURES = {
    b"PK\x03\x04": "a ZIP or Excel workbook (.xlsx)",
    b"\xd0\xcf\x11\xe0": "an Excel 97-2003 workbook (.xls)",
    b"%PDF": "a PDF",
    b"\x89PNG": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
}
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class FileRefused(ValueError):
    """The whole file is refused; `str()` says why in plain words."""


@dataclass
class FileFacts:
    """What reading the file found before any row: encoding, hash, size, physical line count."""

    encoding: str
    sha256: str
    size: int
    lines: int


@dataclass
class Columns:
    """The header of the file mapped to dataset fields."""

    headers: list[str]
    # field -> index of its one column (fracture_sites only when it comes as one column)
    fields: dict[str, int] = field(default_factory=dict)
    # indexes of the 1.11 / 1.12 / 1.13 site columns, in that order
    site_columns: list[int] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)

    def column_of(self, name: str) -> str:
        """The column as in the file for a field (its name when the file has no such column)."""
        if name == "fracture_sites" and self.site_columns:
            return self.headers[self.site_columns[0]]
        index = self.fields.get(name)
        return self.headers[index] if index is not None else name


def inspect_file(path: Path, max_bytes: int | None = None) -> FileFacts:
    """Hash the file and judge its encoding by content: UTF-8 (BOM or not) or Windows-1252.

    Raises FileRefused for an empty file, one over max_bytes, or one that is not text.
    """
    size = path.stat().st_size
    if max_bytes is not None and size > max_bytes:
        raise FileRefused(
            f"The file is {size_text(size)}, over the limit of {size_text(max_bytes)}"
        )
    digest = hashlib.sha256()
    utf8 = codecs.getincrementaldecoder("utf-8")()
    is_utf8 = True
    lines = 0
    seen_text = False
    last = b""
    with path.open("rb") as stream:
        first = stream.read(_CHUNK)
        chunk = first
        while chunk:
            digest.update(chunk)
            lines += chunk.count(b"\n")
            if not seen_text and chunk.strip(b" \t\r\n\xef\xbb\xbf"):
                seen_text = True
            if is_utf8:
                try:
                    utf8.decode(chunk)
                except UnicodeDecodeError:
                    is_utf8 = False
            last = chunk
            chunk = stream.read(_CHUNK)
        if is_utf8:
            try:
                utf8.decode(b"", final=True)
            except UnicodeDecodeError:
                is_utf8 = False
    if not seen_text:
        raise FileRefused("The file is empty")
    for signature, what in _BINARY_SIGNATURES.items():
        if first.startswith(signature):
            raise FileRefused(f"This is not a CSV file: it looks like {what}. Save it as CSV")
    if first.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise FileRefused("The file is UTF-16 text: save it as CSV in UTF-8 or Windows-1252")
    if b"\x00" in first:
        raise FileRefused("This is not a CSV file: it holds binary data")
    if first.startswith(codecs.BOM_UTF8):
        if not is_utf8:
            raise FileRefused("The file starts like UTF-8 but is not valid UTF-8")
        encoding = "utf-8-sig"
    elif is_utf8:
        encoding = "utf-8"
    else:
        encoding = "cp1252"
        try:
            with path.open("rb") as stream:
                decoder = codecs.getincrementaldecoder("cp1252")()
                while chunk := stream.read(_CHUNK):
                    decoder.decode(chunk)
        except UnicodeDecodeError:
            raise FileRefused(
                "This is not a CSV file in UTF-8 or Windows-1252: it holds bytes of neither"
            ) from None
    sample = first[:65536].decode(encoding, errors="replace")
    if _CONTROL.search(sample):
        raise FileRefused("This is not a CSV file: it holds control characters")
    if not last.endswith(b"\n"):
        lines += 1  # the last line has no line break
    return FileFacts(encoding=encoding, sha256=digest.hexdigest(), size=size, lines=lines)


def size_text(size: int) -> str:
    """A file size as people read it: 50 MB, 1.5 MB, 200 KB, 100 bytes."""
    if size >= 1024 * 1024:
        return f"{size / (1024 * 1024):.1f}".removesuffix(".0") + " MB"
    if size >= 1024:
        return f"{size / 1024:.0f} KB"
    return f"{size} bytes"


def _trim(text: str) -> str:
    return text.replace("\ufeff", "").strip()


def map_header(header: list[str]) -> Columns:
    """Map header cells to dataset fields: canonical names in any case, or FLS-DB question codes.

    Raises FileRefused when two columns give one field, or when nhs_number or fracture_date is
    missing (with the likely cause: no header row, or another delimiter than a comma).
    """
    headers = [_trim(cell) for cell in header]
    columns = Columns(headers=headers)
    canonical = {name.lower(): name for name in CSV_COLUMNS}
    first_column: dict[str, str] = {}
    sites: list[tuple[str, int]] = []  # (question code, index) of the 1.11-1.13 columns
    for index, name in enumerate(headers):
        if not name:
            continue
        target = canonical.get(name.lower())
        code = None
        if target is None:
            match = _QUESTION_CODE.match(name)
            if match and match.group(1) in FLSDB_CODES:
                code = match.group(1)
                target = FLSDB_CODES[code]
        if target is None:
            columns.unknown.append(name)
            continue
        site_code = code if target == "fracture_sites" and code in SITE_CODES else None
        key = f"fracture_sites {site_code}" if site_code is not None else target
        clash = first_column.get(key)
        if clash is None and target == "fracture_sites":
            # One fracture_sites column and 1.11-1.13 columns also give one field twice.
            clash = next(
                (
                    col
                    for k, col in first_column.items()
                    if k.startswith("fracture_sites")
                    and (k == "fracture_sites") != (key == "fracture_sites")
                ),
                None,
            )
        if clash is not None:
            raise FileRefused(
                f"Two columns give {target}: {clash!r} and {name!r}. Keep one of them"
            )
        first_column[key] = name
        if site_code is not None:
            sites.append((site_code, index))
        else:
            columns.fields[target] = index
    columns.site_columns = [index for _code, index in sorted(sites)]
    missing = [f for f in ("nhs_number", "fracture_date") if f not in columns.fields]
    if missing:
        raise FileRefused(_missing_columns_reason(headers, missing))
    return columns


def _missing_columns_reason(headers: list[str], missing: list[str]) -> str:
    joined = ",".join(headers)
    for delimiter, name in ((";", "semicolons"), ("\t", "tabs"), ("|", "vertical bars")):
        if delimiter in joined:
            cells = [_trim(c).lower() for c in joined.split(delimiter)]
            if "nhs_number" in cells or any(c.startswith("1.01") for c in cells):
                return (
                    f"The file is separated by {name}, not commas: save it as CSV (comma delimited)"
                )
    looks_like_data = any(
        re.fullmatch(r"[\d\s-]{10,13}|\d{1,4}[/-]\d{1,2}[/-]\d{1,4}", h) for h in headers if h
    )
    if looks_like_data or not any(headers):
        return (
            "The file has no header: its first line must name the columns "
            "(nhs_number, fracture_date, ...)"
        )
    return "The header has no column " + " or ".join(missing) + ": both are required"


def open_text(path: Path, encoding: str) -> io.TextIOWrapper:
    return path.open("r", encoding=encoding, newline="")


def read_rows(stream: io.TextIOBase) -> Iterator[tuple[int, list[str]]]:
    """(physical line number where the row starts, cells) for each data row; blank rows skipped.

    Line numbers count physical lines, the header being line 1 (a quoted cell may span lines).
    The stream is positioned after the header (read_header).
    """
    reader = csv.reader(stream)
    previous_end = 1
    try:
        for row in reader:
            start = previous_end + 1
            previous_end = 1 + reader.line_num  # the header was read before this reader
            if not row or not any(cell.strip() for cell in row):
                continue
            yield start, row
    except csv.Error as error:
        raise FileRefused(f"line {previous_end + 1}: the file is not valid CSV ({error})") from None


def read_header(stream: io.TextIOBase) -> list[str]:
    """The first line of the file as cells; FileRefused when there is none."""
    reader = csv.reader([stream.readline()])
    try:
        header = next(reader, [])
    except csv.Error as error:
        raise FileRefused(f"line 1: the header is not valid CSV ({error})") from None
    if not any(_trim(cell) for cell in header):
        raise FileRefused(
            "The file has no header: its first line must name the columns "
            "(nhs_number, fracture_date, ...)"
        )
    return header
