"""XLSX inputs read by python-calamine: formulas, dates, merged cells, empty rows, wide sheets,
and hostile workbooks (a zip bomb, a huge cell, XXE and entity expansion) refused in one line
before they are loaded, with the memory of the reading process bounded."""

from __future__ import annotations

import resource
import zipfile
from pathlib import Path

import openpyxl
import pytest

from crawjud_tasks.bots._inputs import InputLimits, read_items
from crawjud_tasks.bots._xlsx_writer import XlsxReport
from crawjud_tasks.bots.contracts import BotInput
from crawjud_tasks.errors import BotParameterError

_NS = "http://schemas.openxmlformats.org"
_OFFICE = "application/vnd.openxmlformats-officedocument.spreadsheetml"
_CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    f'<Types xmlns="{_NS}/package/2006/content-types">'
    '<Default Extension="rels" '
    'ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    f'<Override PartName="/xl/workbook.xml" ContentType="{_OFFICE}.sheet.main+xml"/>'
    f'<Override PartName="/xl/worksheets/sheet1.xml" ContentType="{_OFFICE}.worksheet+xml"/>'
    "</Types>"
)
_RELS = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    f'<Relationships xmlns="{_NS}/package/2006/relationships">'
    f'<Relationship Id="rId1" Type="{_NS}/officeDocument/2006/relationships/officeDocument" '
    'Target="xl/workbook.xml"/></Relationships>'
)
_WORKBOOK = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
    'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
    '<sheets><sheet name="S" sheetId="1" r:id="rId1"/></sheets></workbook>'
)
_WORKBOOK_RELS = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    f'<Relationships xmlns="{_NS}/package/2006/relationships">'
    f'<Relationship Id="rId1" Type="{_NS}/officeDocument/2006/relationships/worksheet" '
    'Target="worksheets/sheet1.xml"/></Relationships>'
)


def hand_made(path: Path, sheet: str | bytes, *, doctype: str = "") -> Path:
    """A minimal workbook whose sheet XML is ``sheet`` (after ``doctype``)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as package:
        package.writestr("[Content_Types].xml", _CONTENT_TYPES)
        package.writestr("_rels/.rels", _RELS)
        package.writestr("xl/workbook.xml", _WORKBOOK)
        package.writestr("xl/_rels/workbook.xml.rels", _WORKBOOK_RELS)
        head = f'<?xml version="1.0" encoding="UTF-8"?>{doctype}'.encode()
        body = sheet.encode() if isinstance(sheet, str) else sheet
        package.writestr("xl/worksheets/sheet1.xml", head + body)
    return path


def sheet_xml(rows: str) -> str:
    return (
        '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
        f"<sheetData>{rows}</sheetData></worksheet>"
    )


def text_row(number: int, *cells: str) -> str:
    inner = "".join(f'<c t="inlineStr"><is><t>{cell}</t></is></c>' for cell in cells)
    return f'<row r="{number}">{inner}</row>'


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "inputs"
    folder.mkdir()
    return folder


def read(path: Path, root: Path, **limits: int) -> list[tuple[int, dict[str, object]]]:
    items = read_items(
        BotInput.from_file(str(path)),
        roots=[root],
        max_inline_rows=5,
        limits=InputLimits(**limits),
    )
    return [(item.row, dict(item.data)) for item in items]


def test_formulas_read_as_their_saved_values(root: Path) -> None:
    sheet = sheet_xml(
        text_row(1, "A", "B")
        + '<row r="2"><c><v>2</v></c><c><f>A2*3</f><v>6</v></c></row>'
        + '<row r="3"><c t="inlineStr"><is><t>=cmd|calc</t></is></c>'
        + '<c t="str"><f>"x"&amp;"y"</f><v>xy</v></c></row>'
    )
    rows = read(hand_made(root / "f.xlsx", sheet), root)
    assert rows == [(2, {"A": 2, "B": 6}), (3, {"A": "=cmd|calc", "B": "xy"})]


def test_merged_cells_dates_and_empty_rows(root: Path) -> None:
    import datetime as dt

    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["NUMERO", "DATA", "OBS"])
    sheet.append(["1", dt.datetime(2026, 3, 1, 14, 30), "merged"])
    sheet.append([])  # an empty row: skipped, the next keeps its number
    sheet.append(["2", dt.date(2026, 3, 2), None])
    sheet.merge_cells("C2:C4")
    book.save(root / "m.xlsx")
    rows = read(root / "m.xlsx", root)
    assert rows == [
        (2, {"NUMERO": "1", "DATA": "2026-03-01T14:30:00", "OBS": "merged"}),
        (
            4,
            {"NUMERO": "2", "DATA": "2026-03-02", "OBS": None},
        ),  # a merge's value is its first cell's
    ]


def test_16384_columns_are_read_and_more_are_refused(root: Path) -> None:
    columns = [f"C{n}" for n in range(16_384)]
    path = root / "wide.xlsx"
    book = XlsxReport(path, ["S"])
    book.row(0, columns)
    book.row(0, list(range(16_384)))
    book.close()
    rows = read(path, root, max_columns=16_384)
    assert len(rows) == 1 and len(rows[0][1]) == 16_384 and rows[0][1]["C16383"] == 16_383
    with pytest.raises(
        BotParameterError, match=r"has 16384 named columns, more than bots\.max_columns \(16000\)"
    ):
        read(path, root)


def test_a_zip_bomb_is_refused_before_it_is_unpacked(root: Path) -> None:
    # 200 MiB of spaces in a sheet: a few hundred KiB packed.
    filler = b" " * (200 * 1024 * 1024)
    path = hand_made(
        root / "bomb.xlsx",
        sheet_xml(text_row(1, "A")).encode().replace(b"<sheetData>", b"<sheetData>" + filler),
    )
    assert path.stat().st_size < 1024 * 1024
    del filler
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(
        BotParameterError,
        match=r"unpacks to more than bots\.max_xlsx_unpacked_bytes \(104857600 bytes\)",
    ):
        read(path, root, max_xlsx_unpacked_bytes=100 * 1024 * 1024)
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown < 64 * 1024  # KiB: the sheet was never held


def test_a_huge_cell_is_refused_before_it_is_loaded(root: Path) -> None:
    # One 150 MiB cell: 151 KiB packed (issue 13's case); refused by its length, not its memory.
    cell = "x" * (150 * 1024 * 1024)
    path = hand_made(root / "cell.xlsx", sheet_xml(text_row(1, "A") + text_row(2, cell)))
    del cell
    assert path.stat().st_size < 400 * 1024
    with pytest.raises(
        BotParameterError, match=r"has a cell longer than bots\.max_cell_chars \(32767 characters\)"
    ):
        read(path, root)


@pytest.mark.parametrize("char", [">", "é"])
def test_a_cell_just_too_long_is_refused_and_one_at_the_limit_read(root: Path, char: str) -> None:
    # A cell at the limit is read; a run of bytes without "<" one byte over the bound refused.
    limit = 100
    fits = hand_made(root / "fits.xlsx", sheet_xml(text_row(1, "A") + text_row(2, char * limit)))
    assert read(fits, root, max_cell_chars=limit) == [(2, {"A": char * limit})]
    over = "<" + " " * (limit * 6 + 1025)  # a run of bytes with no "<", 1 byte too long
    path = hand_made(root / "over.xlsx", sheet_xml(text_row(1, "A")).replace("<", over, 1))
    with pytest.raises(BotParameterError, match=r"longer than bots\.max_cell_chars \(100 "):
        read(path, root, max_cell_chars=limit)


def test_a_cell_of_closing_brackets_is_refused_too(root: Path) -> None:
    # ">" needs no escape in XML text: the check does not take it for a tag's end. 1.5 MB
    # spans two of the blocks the check inflates at a time.
    cell = ">" * 1_500_000
    path = hand_made(root / "gt.xlsx", sheet_xml(text_row(1, "A") + text_row(2, cell)))
    with pytest.raises(BotParameterError, match=r"has a cell longer than bots\.max_cell_chars"):
        read(path, root, max_cell_chars=200_000)


def test_xxe_and_entity_expansion_are_not_expanded(root: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    xxe = f'<!DOCTYPE w [<!ENTITY x SYSTEM "file://{secret}">]>'
    laughs = (
        '<!DOCTYPE w [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
        '<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">]>'
    )
    for name, doctype, entity in (("xxe", xxe, "&x;"), ("laughs", laughs, "&d;")):
        path = hand_made(
            root / f"{name}.xlsx",
            sheet_xml(text_row(1, "A") + text_row(2, entity)),
            doctype=doctype,
        )
        try:
            rows = read(path, root)
        except BotParameterError as exc:  # refused as unreadable: fine, in one line
            refused = str(exc)
            rows = []
        else:
            refused = "cannot be read as an XLSX workbook"
        assert "cannot be read as an XLSX workbook" in refused and "\n" not in refused
        text = str(rows)
        assert "TOP-SECRET" not in text
        assert "aaaaaaaaaa" * 10 not in text
