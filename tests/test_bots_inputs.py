"""Reading a run's items from real CSV and XLSX files (and inline rows), and every refusal."""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from crawjud_tasks.bots._bot import Item
from crawjud_tasks.bots._inputs import read_items
from crawjud_tasks.bots.contracts import BotInput, Cell
from crawjud_tasks.errors import BotParameterError


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "inputs"
    folder.mkdir()
    return folder


def read(path: Path | str, root: Path, *, sheet: str | None = None) -> list[Item]:
    return read_items(BotInput.from_file(str(path), sheet=sheet), roots=[root], max_inline_rows=5)


def rows(items: list[Item]) -> list[tuple[int, int, dict[str, Cell]]]:
    return [(item.index, item.row, dict(item.data)) for item in items]


def write_xlsx(path: Path, sheets: dict[str, Sequence[Sequence[Any]]]) -> Path:
    workbook = openpyxl.Workbook()
    workbook.remove(workbook.active)
    for name, sheet_rows in sheets.items():
        sheet = workbook.create_sheet(name)
        for number, row in enumerate(sheet_rows, start=1):
            for column, value in enumerate(row, start=1):
                if value is not None:
                    sheet.cell(row=number, column=column, value=value)
    workbook.save(path)
    return path


# --- CSV -------------------------------------------------------------------------------------


def test_csv_utf8_bom_semicolons(root: Path) -> None:
    path = root / "capa.csv"
    text = (
        " numero_processo ;Grau; valor ;data\r\n"
        "0001234-56.2024.8.26.0100;1;1234,56;01/02/2024\r\n"
        ";;;\r\n"
        "\r\n"
        "  007  ; ;;\r\n"
    )
    path.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    assert rows(read(path, root)) == [
        (
            0,
            2,
            {
                "NUMERO_PROCESSO": "0001234-56.2024.8.26.0100",
                "GRAU": "1",
                "VALOR": "1234,56",
                "DATA": "01/02/2024",
            },
        ),
        (1, 5, {"NUMERO_PROCESSO": "007", "GRAU": None, "VALOR": None, "DATA": None}),
    ]


def test_csv_cp1252_from_excel_pt_br(root: Path) -> None:
    path = root / "acoes.csv"
    path.write_bytes("Tipo;Descrição\r\nAção;Petição inicial\r\n".encode("cp1252"))
    assert rows(read(path, root)) == [
        (0, 2, {"TIPO": "Ação", "DESCRIÇÃO": "Petição inicial"}),
    ]


def test_csv_bytes_cp1252_leaves_undefined_decode_as_latin1(root: Path) -> None:
    path = root / "odd.csv"
    path.write_bytes(b"A;B\r\nx\x81;\xe7\r\n")  # 0x81 is undefined in cp1252
    assert rows(read(path, root)) == [(0, 2, {"A": "x\x81", "B": "ç"})]


def test_csv_commas_quotes_and_line_breaks(root: Path) -> None:
    path = root / "comma.csv"
    path.write_text('nome,obs\n"Silva, Ana","linha 1\nlinha 2"\nB,\n', encoding="utf-8")
    assert rows(read(path, root)) == [
        (0, 2, {"NOME": "Silva, Ana", "OBS": "linha 1\nlinha 2"}),
        (1, 3, {"NOME": "B", "OBS": None}),
    ]


def test_csv_excel_sep_line_and_utf16(root: Path) -> None:
    sep = root / "sep.csv"
    sep.write_text("sep=,\nA;B,C\n1;2,3\n", encoding="utf-8")
    assert rows(read(sep, root)) == [(0, 2, {"A;B": "1;2", "C": "3"})]
    utf16 = root / "unicode.csv"
    utf16.write_text("A\tB\nção\t2\n", encoding="utf-16")  # Excel's "Unicode text"
    assert rows(read(utf16, root)) == [(0, 2, {"A": "ção", "B": "2"})]


def test_csv_unnamed_columns_and_extra_cells_are_dropped(root: Path) -> None:
    path = root / "gaps.csv"
    path.write_text("A;;C\n1;lost;3;extra\n;only-unnamed;\n4\n", encoding="utf-8")
    assert rows(read(path, root)) == [
        (0, 2, {"A": "1", "C": "3"}),
        (1, 4, {"A": "4", "C": None}),
    ]


def test_csv_reads_a_large_file(root: Path) -> None:
    path = root / "big.csv"
    lines = ["NUMERO;VALOR"] + [f"{n:07d};{n},5" for n in range(100_000)]
    path.write_text("\n".join(lines), encoding="utf-8")
    items = read(path, root)
    assert len(items) == 100_000
    assert rows(items[-1:]) == [(99_999, 100_001, {"NUMERO": "0099999", "VALOR": "99999,5"})]


# --- XLSX ------------------------------------------------------------------------------------


def test_xlsx_types_dates_and_empty_rows(root: Path) -> None:
    path = write_xlsx(
        root / "capa.xlsx",
        {
            "Planilha1": [
                [" numero_processo ", "Data", "Momento", "Hora", "Qtd", "Valor", "Ativo", None],
                [
                    "  0001234-56.2024.8.26.0100 ",
                    dt.date(2024, 2, 1),
                    dt.datetime(2024, 2, 1, 14, 30, 0, 999_999),
                    dt.time(9, 5, 59),
                    12,
                    1234.56,
                    True,
                    "under no name",
                ],
                [None, None, None, None, None, None, None, "under no name"],
                [],
                ["007", dt.datetime(2024, 3, 5), None, None, 12.0, -2.5, False, None],
                ["   ", None, None, None, None, None, None, None],
            ]
        },
    )
    assert rows(read(path, root)) == [
        (
            0,
            2,
            {
                "NUMERO_PROCESSO": "0001234-56.2024.8.26.0100",
                "DATA": "2024-02-01",
                "MOMENTO": "2024-02-01T14:30:01",
                "HORA": "09:05:59",
                "QTD": 12,
                "VALOR": 1234.56,
                "ATIVO": True,
            },
        ),
        (
            1,
            5,
            {
                "NUMERO_PROCESSO": "007",
                "DATA": "2024-03-05",
                "MOMENTO": None,
                "HORA": None,
                "QTD": 12,
                "VALOR": -2.5,
                "ATIVO": False,
            },
        ),
    ]
    assert type(read(path, root)[1]["QTD"]) is int


def test_xlsx_integral_float_is_an_int_but_huge_ones_stay_floats(root: Path) -> None:
    path = root / "floats.xlsx"
    write_xlsx(path, {"S": [["A", "B", "C"], [7.0, 1e20, 0.5]]})
    item = read(path, root)[0]
    assert (item["A"], item["B"], item["C"]) == (7, 1e20, 0.5)
    assert (type(item["A"]), type(item["B"])) == (int, float)


def test_xlsx_named_sheet_and_first_sheet(root: Path) -> None:
    path = write_xlsx(
        root / "two.xlsx", {"Primeira": [["a"], ["first"]], "Segunda": [["b"], ["second"]]}
    )
    assert rows(read(path, root)) == [(0, 2, {"A": "first"})]
    assert rows(read(path, root, sheet="Segunda")) == [(0, 2, {"B": "second"})]


def test_xlsx_missing_sheet_names_the_sheets(root: Path) -> None:
    path = write_xlsx(root / "two.xlsx", {"Primeira": [["a"], [1]], "Segunda": [["b"], [2]]})
    with pytest.raises(
        BotParameterError,
        match=r"has no sheet 'Dados'; its sheets are 'Primeira', 'Segunda': pass one of them",
    ):
        read(path, root, sheet="Dados")


def test_xlsx_duplicate_columns_after_normalisation(root: Path) -> None:
    path = write_xlsx(root / "dup.xlsx", {"S": [["numero", "x", " NUMERO "], [1, 2, 3]]})
    with pytest.raises(
        BotParameterError,
        match=r"has two columns named 'NUMERO' \('numero' and 'NUMERO'\) once names are "
        r"trimmed and upper-cased: rename or remove one",
    ):
        read(path, root)


def test_xlsx_damaged_workbook(root: Path) -> None:
    path = root / "broken.xlsx"
    path.write_bytes(b"this is not a zip file at all")
    with pytest.raises(
        BotParameterError,
        match=r"cannot be read as an XLSX workbook \(.+\): open it in Excel and save it again",
    ):
        read(path, root)


def test_xlsx_without_calamine(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_xlsx(root / "capa.xlsx", {"S": [["a"], [1]]})
    monkeypatch.setitem(sys.modules, "python_calamine", None)  # its import now fails
    with pytest.raises(
        BotParameterError,
        match=r"reading one needs python-calamine: install the xlsx extra on the worker "
        r"\(pip install 'crawjud-tasks\[xlsx\]'\), or pass a \.csv file",
    ):
        read(path, root)


# --- refusals of any file --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", r"is empty: put the column names in row 1 and one item per row below"),
        (b"\r\nA;B\r\n1;2\r\n", r"row 1 of input file '.+' has no column names"),
        (b" ; ;\r\n1;2\r\n", r"row 1 of input file '.+' has no column names"),
        (b"A;B\r\n", r"has no rows under its header: put one item per row below row 1"),
        (b"A;B\r\n;\r\n\r\n", r"has no rows under its header"),
        (b"A;a \r\n1;2\r\n", r"has two columns named 'A' \('A' and 'a'\) once names are"),
        (b"A;B\r\n1\x00;2\r\n", r"is not a text file \(it has NUL bytes\)"),
        (
            b'A;B\r\n1;"' + b"x" * 200_000 + b'"\r\n',
            r"cannot be read as CSV \(line 2: field larger than field limit \(\d+\)\): fix that",
        ),
    ],
)
def test_csv_refusals(root: Path, content: bytes, message: str) -> None:
    path = root / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(BotParameterError, match=message):
        read(path, root)


def test_empty_and_header_only_xlsx(root: Path) -> None:
    empty = write_xlsx(root / "empty.xlsx", {"S": []})
    with pytest.raises(BotParameterError, match=r"'.+empty\.xlsx' is empty"):
        read(empty, root)
    header_only = write_xlsx(root / "header.xlsx", {"S": [["A", "B"]]})
    with pytest.raises(BotParameterError, match=r"has no rows under its header"):
        read(header_only, root)


def test_csv_has_no_sheets(root: Path) -> None:
    path = root / "capa.csv"
    path.write_text("A\n1\n", encoding="utf-8")
    with pytest.raises(
        BotParameterError, match=r"is a CSV file, which has no sheets: drop sheet='Dados'"
    ):
        read(path, root, sheet="Dados")


def test_missing_file_folder_and_unknown_extension(root: Path) -> None:
    with pytest.raises(BotParameterError, match=r"'.+nope\.csv' does not exist on the worker"):
        read(root / "nope.csv", root)
    (root / "sub.csv").mkdir()
    with pytest.raises(BotParameterError, match=r"is a folder: pass the path of a \.csv or \.xlsx"):
        read(root / "sub.csv", root)
    for name in ("notes.txt", "old.xls", "noext"):
        (root / name).write_text("A\n1\n", encoding="utf-8")
        with pytest.raises(
            BotParameterError, match=r"is not a \.csv or \.xlsx file: save it from Excel"
        ):
            read(root / name, root)


def test_upper_case_extension_is_accepted(root: Path) -> None:
    path = root / "CAPA.CSV"
    path.write_text("a\n1\n", encoding="utf-8")
    assert rows(read(path, root)) == [(0, 2, {"A": "1"})]


# --- confinement to bots.allowed_roots -------------------------------------------------------


def test_outside_the_roots_names_them(tmp_path: Path, root: Path) -> None:
    outside = tmp_path / "outside.csv"
    outside.write_text("A\n1\n", encoding="utf-8")
    other = tmp_path / "other"
    with pytest.raises(BotParameterError) as caught:
        read_items(BotInput.from_file(str(outside)), roots=[root, other], max_inline_rows=5)
    assert str(caught.value) == (
        f"input file {str(outside)!r} is outside bots.allowed_roots ({root}, {other}): move it "
        "into one of these folders, or add its folder to bots.allowed_roots"
    )


def test_no_roots_says_to_set_them(root: Path) -> None:
    path = root / "capa.csv"
    path.write_text("A\n1\n", encoding="utf-8")
    with pytest.raises(
        BotParameterError,
        match=r"no folder is allowed for input files; set bots.allowed_roots to the folders",
    ):
        read_items(BotInput.from_file(str(path)), roots=[], max_inline_rows=5)


def test_dot_dot_cannot_leave_the_root(tmp_path: Path, root: Path) -> None:
    (tmp_path / "secret.csv").write_text("A\n1\n", encoding="utf-8")
    with pytest.raises(BotParameterError, match=r"is outside bots\.allowed_roots"):
        read(f"{root}/../secret.csv", root)
    (root / "sub").mkdir()
    (root / "capa.csv").write_text("A\n1\n", encoding="utf-8")
    assert rows(read(f"{root}/sub/../capa.csv", root)) == [(0, 2, {"A": "1"})]


def test_symlink_out_of_the_root_is_refused(tmp_path: Path, root: Path) -> None:
    target = tmp_path / "secret.csv"
    target.write_text("A\n1\n", encoding="utf-8")
    link = root / "innocent.csv"
    link.symlink_to(target)
    with pytest.raises(BotParameterError, match=r"'.+innocent\.csv' is outside bots\."):
        read(link, root)
    (root / "linked-folder").symlink_to(tmp_path, target_is_directory=True)
    with pytest.raises(BotParameterError, match=r"is outside bots\.allowed_roots"):
        read(root / "linked-folder" / "secret.csv", root)


def test_symlinks_within_the_roots_are_followed(tmp_path: Path, root: Path) -> None:
    (root / "real.csv").write_text("A\n1\n", encoding="utf-8")
    (root / "alias.csv").symlink_to(root / "real.csv")
    assert rows(read(root / "alias.csv", root)) == [(0, 2, {"A": "1"})]
    linked_root = tmp_path / "linked-root"
    linked_root.symlink_to(root, target_is_directory=True)
    assert rows(read(linked_root / "real.csv", linked_root)) == [(0, 2, {"A": "1"})]


def test_symlink_loop(root: Path) -> None:
    (root / "loop.csv").symlink_to(root / "loop.csv")
    with pytest.raises(BotParameterError, match=r"'.+loop\.csv' "):
        read(root / "loop.csv", root)


# --- inline rows -----------------------------------------------------------------------------


def inline(rows_: Sequence[dict[str, Cell]], max_inline_rows: int = 5) -> list[Item]:
    return read_items(BotInput.inline(rows_), roots=[], max_inline_rows=max_inline_rows)


def test_inline_rows_are_normalised_like_files() -> None:
    items = inline(
        [
            {" numero ": " 0001 ", "valor": 1.5},
            {"NUMERO": None, "VALOR": "  "},
            {"numero": "0002", "extra": True, "": "dropped"},
        ]
    )
    assert rows(items) == [
        (0, 2, {"NUMERO": "0001", "VALOR": 1.5, "EXTRA": None}),
        (1, 4, {"NUMERO": "0002", "VALOR": None, "EXTRA": True}),
    ]


def test_inline_refusals() -> None:
    with pytest.raises(
        BotParameterError,
        match=r"6 inline rows is more than bots\.max_inline_rows \(5\): write them to a CSV or "
        r"XLSX file inside bots\.allowed_roots and pass BotInput\.from_file\(path\)",
    ):
        inline([{"A": n} for n in range(6)])
    with pytest.raises(BotParameterError, match=r"inline row 3 has two columns named 'A'"):
        inline([{"A": 1}, {"a": 1, "A ": 2}])
    with pytest.raises(BotParameterError, match=r"every inline row is empty"):
        inline([{"A": None}, {"B": " "}])
    with pytest.raises(
        BotParameterError,
        match=r"inline row 2, column 'A': a cell is text, a number, a boolean or empty, got list",
    ):
        inline([{"a": [1, 2]}])  # type: ignore[dict-item]  # pyright: ignore[reportArgumentType]  (an untyped caller)
