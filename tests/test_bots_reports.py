"""A run's report, read back from the files: the CSV files, the workbook, the summary, the zip."""

from __future__ import annotations

import csv
import datetime as dt
import itertools
import json
import random
import re
import zipfile
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from crawjud_tasks.bots._bot import ItemRecord
from crawjud_tasks.bots._inputs import read_items
from crawjud_tasks.bots._reports import (
    LocalReportStore,
    ReportRun,
    ReportStore,
    report_file_name,
    write_report,
)
from crawjud_tasks.bots.contracts import BotInput, RunCounts, RunStatus
from crawjud_tasks.errors import PayloadError

STARTED = dt.datetime(2026, 3, 1, 9, 0, 0, tzinfo=dt.timezone.utc)
FINISHED = dt.datetime(2026, 3, 1, 9, 2, 30, tzinfo=dt.timezone.utc)
ATTACKS = ["=cmd|' /C calc'!A0", "+1", "-2+3", "@SUM(1)", "\tx", "\r=1"]


def a_run(columns: list[str], **changes: Any) -> ReportRun:
    fields: dict[str, Any] = {
        "run_id": "exec:1842",
        "bot": "projudi.capa",
        "user_id": 7,
        "status": RunStatus.COMPLETED_WITH_ERRORS,
        "counts": RunCounts(total=4, succeeded=2, failed=1, skipped=1),
        "started_at": STARTED,
        "finished_at": FINISHED,
        "error": None,
        "columns": columns,
    }
    fields.update(changes)
    return ReportRun(**fields)


def success(index: int, data: dict[str, Any], **cells: Any) -> ItemRecord:
    return ItemRecord(index, index + 2, "succeeded", cells, data)


def read_csv(path: Path) -> list[list[str]]:
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # the mark Excel needs to read UTF-8
    assert b"\r\n" in raw
    with path.open(encoding="utf-8-sig", newline="") as file:
        return list(csv.reader(file, delimiter=";"))


_ESCAPE = re.compile(r"_x([0-9A-F]{4})_")


def unescape(cell: Any) -> Any:
    """A cell as Excel reads it: the writer escapes control characters as ``_xHHHH_`` (OOXML's
    ST_Xstring), which Excel decodes and openpyxl leaves as they are."""
    if isinstance(cell, str):
        return _ESCAPE.sub(lambda match: chr(int(match.group(1), 16)), cell)
    return cell


def read_sheets(path: Path) -> dict[str, list[list[Any]]]:
    workbook = openpyxl.load_workbook(path)
    try:
        return {
            sheet.title: [
                [unescape(cell) for cell in row] for row in sheet.iter_rows(values_only=True)
            ]
            for sheet in workbook.worksheets
        }
    finally:
        workbook.close()


RECORDS = [
    ItemRecord(3, 6, "skipped", {"NUMERO": "0004", "VALOR": None}, {}, "já cadastrado"),
    ItemRecord(1, 3, "failed", {"NUMERO": "0002", "VALOR": "10,5"}, {}, "processo não encontrado"),
    success(2, {"PARTES": 3, "STATUS": "ok"}, NUMERO="0003", VALOR=None),
    success(0, {"STATUS": "ativo", "VALOR_CAUSA": 1234.56, "SEGREDO": False}, NUMERO="0001"),
]


def test_report_files_tables_and_order(tmp_path: Path) -> None:
    archive = write_report(a_run(["NUMERO", "VALOR"]), RECORDS, tmp_path / "run")

    assert archive == tmp_path / "run" / "exec~1842.zip"
    assert read_csv(tmp_path / "run" / "successes.csv") == [
        ["NUMERO", "VALOR", "ROW", "STATUS", "VALOR_CAUSA", "SEGREDO", "PARTES"],
        ["0001", "", "2", "ativo", "1234,56", "FALSE", ""],
        ["0003", "", "4", "ok", "", "", "3"],
    ]
    assert read_csv(tmp_path / "run" / "errors.csv") == [
        ["NUMERO", "VALOR", "ROW", "MOTIVO_ERRO"],
        ["0002", "10,5", "3", "processo não encontrado"],
    ]
    assert read_csv(tmp_path / "run" / "skipped.csv") == [
        ["NUMERO", "VALOR", "ROW", "MOTIVO"],
        ["0004", "", "6", "já cadastrado"],
    ]
    assert read_sheets(tmp_path / "run" / "report.xlsx") == {
        "Sucessos": [
            ["NUMERO", "VALOR", "ROW", "STATUS", "VALOR_CAUSA", "SEGREDO", "PARTES"],
            ["0001", None, 2, "ativo", 1234.56, False, None],
            ["0003", None, 4, "ok", None, None, 3],
        ],
        "Erros": [
            ["NUMERO", "VALOR", "ROW", "MOTIVO_ERRO"],
            ["0002", "10,5", 3, "processo não encontrado"],
        ],
        "Ignorados": [
            ["NUMERO", "VALOR", "ROW", "MOTIVO"],
            ["0004", None, 6, "já cadastrado"],
        ],
    }


def test_summary_and_zip_members(tmp_path: Path) -> None:
    run = a_run(["NUMERO", "VALOR"], status=RunStatus.FAILED, error="login refused")
    archive = write_report(run, RECORDS, tmp_path)
    files = ["successes.csv", "errors.csv", "skipped.csv", "report.xlsx"]
    assert json.loads((tmp_path / "summary.json").read_text(encoding="utf-8")) == {
        "run_id": "exec:1842",
        "bot": "projudi.capa",
        "user_id": 7,
        "status": "failed",
        "counts": {"total": 4, "succeeded": 2, "failed": 1, "skipped": 1},
        "started_at": "2026-03-01T09:00:00+00:00",
        "finished_at": "2026-03-01T09:02:30+00:00",
        "seconds": 150.0,
        "error": "login refused",
        "files": files,
    }
    with zipfile.ZipFile(archive) as package:
        assert package.namelist() == [*files, "summary.json"]
        for name in package.namelist():
            assert package.read(name) == (tmp_path / name).read_bytes()
    assert not list(tmp_path.glob(".*"))  # no temporary file left behind


def test_without_xlsx(tmp_path: Path) -> None:
    archive = write_report(a_run(["NUMERO", "VALOR"]), RECORDS, tmp_path, xlsx=False)
    with zipfile.ZipFile(archive) as package:
        assert package.namelist() == ["successes.csv", "errors.csv", "skipped.csv", "summary.json"]
    summary = json.loads((tmp_path / "summary.json").read_text(encoding="utf-8"))
    assert summary["files"] == ["successes.csv", "errors.csv", "skipped.csv"]
    assert not (tmp_path / "report.xlsx").exists()


def test_no_records_still_writes_every_file(tmp_path: Path) -> None:
    run = a_run(["NUMERO"], status=RunStatus.CANCELLED, counts=RunCounts(total=3))
    write_report(run, [], tmp_path)
    assert read_csv(tmp_path / "successes.csv") == [["NUMERO", "ROW"]]
    assert read_csv(tmp_path / "errors.csv") == [["NUMERO", "ROW", "MOTIVO_ERRO"]]
    assert read_sheets(tmp_path / "report.xlsx") == {
        "Sucessos": [["NUMERO", "ROW"]],
        "Erros": [["NUMERO", "ROW", "MOTIVO_ERRO"]],
        "Ignorados": [["NUMERO", "ROW", "MOTIVO"]],
    }


def test_formulas_are_neutralised_everywhere(tmp_path: Path) -> None:
    columns = ["NUMERO", "=HYPERLINK()"]
    records = [
        success(
            index,
            {"RESULTADO": attack, "@COL": 1, "NEGATIVO": -5, "FRACAO": -2.5},
            NUMERO=attack,
            **{"=HYPERLINK()": "-"},
        )
        for index, attack in enumerate(ATTACKS)
    ]
    records += [
        ItemRecord(len(ATTACKS) + n, 99 + n, "failed", {"NUMERO": "x"}, {}, attack)
        for n, attack in enumerate(ATTACKS)
    ]
    write_report(a_run(columns), records, tmp_path)
    quoted = [f"'{attack}" for attack in ATTACKS]
    successes = read_csv(tmp_path / "successes.csv")
    header = ["NUMERO", "'=HYPERLINK()", "ROW", "RESULTADO", "'@COL", "NEGATIVO", "FRACAO"]
    assert successes[0] == header
    assert [row[0] for row in successes[1:]] == quoted
    assert [row[3] for row in successes[1:]] == quoted
    assert {(row[1], row[4], row[5], row[6]) for row in successes[1:]} == {
        ("'-", "1", "-5", "-2,5")
    }
    assert [row[3] for row in read_csv(tmp_path / "errors.csv")[1:]] == quoted

    workbook = openpyxl.load_workbook(tmp_path / "report.xlsx")
    sheet = workbook["Sucessos"]
    assert [cell.value for cell in sheet[1]] == header
    for row in sheet.iter_rows(min_row=2):
        assert unescape(row[0].value) in quoted
        assert row[3].value == row[0].value
        assert row[1].value == "'-"
        assert (row[5].value, row[6].value) == (-5, -2.5)  # numbers stay numbers
        assert (row[5].data_type, row[6].data_type) == ("n", "n")
    for row in itertools.chain(workbook["Sucessos"].iter_rows(), workbook["Erros"].iter_rows()):
        for cell in row:
            if isinstance(cell.value, str):
                assert cell.data_type == "s"  # text is never a formula
    assert [unescape(row[3].value) for row in workbook["Erros"].iter_rows(min_row=2)] == quoted
    workbook.close()


def test_xlsx_text_xml_cannot_hold_and_long_text(tmp_path: Path) -> None:
    data = {"CONTROLE": "a\x01b\x0bc", "LONGO": "x" * 40_000, "MARCAS": "<a & b>", "CRLF": "1\r\n2"}
    write_report(a_run(["NUMERO"]), [success(0, data, NUMERO="1")], tmp_path)
    rows = read_sheets(tmp_path / "report.xlsx")["Sucessos"]
    assert rows[1][2:] == ["abc", "x" * 32_767, "<a & b>", "1\r\n2"]
    assert read_csv(tmp_path / "successes.csv")[1][2:] == [
        "a\x01b\x0bc",
        "x" * 40_000,
        "<a & b>",
        "1\r\n2",
    ]


def test_special_floats_and_booleans(tmp_path: Path) -> None:
    data = {"NAN": float("nan"), "INF": float("inf"), "MENOS": float("-inf"), "SIM": True}
    write_report(a_run(["N"]), [success(0, data, N=1)], tmp_path)
    assert read_csv(tmp_path / "successes.csv")[1] == ["1", "2", "", "", "", "TRUE"]
    assert read_sheets(tmp_path / "report.xlsx")["Sucessos"][1] == [1, 2, None, None, None, True]


def test_columns_clashes_duplicates_and_unlisted_inputs(tmp_path: Path) -> None:
    records = [
        success(0, {"VALOR": "corrigido", "ROW": 999}, NUMERO="1", VALOR="errado"),
        success(0, {"STATUS": "the later record wins"}, NUMERO="1b", VALOR=None),
        success(1, {}, NUMERO="2", VALOR="3", EXTRA="not in run.columns"),
    ]
    write_report(a_run(["NUMERO", "VALOR"]), records, tmp_path)
    assert read_csv(tmp_path / "successes.csv") == [
        ["NUMERO", "VALOR", "EXTRA", "ROW", "STATUS"],
        ["1b", "", "", "2", "the later record wins"],
        ["2", "3", "not in run.columns", "3", ""],
    ]
    clash = [success(0, {"VALOR": "corrigido", "ROW": 999}, NUMERO="1", VALOR="errado")]
    write_report(a_run(["NUMERO", "VALOR"]), clash, tmp_path / "clash")
    assert read_csv(tmp_path / "clash" / "successes.csv") == [
        ["NUMERO", "VALOR", "ROW"],
        ["1", "corrigido", "2"],
    ]


def test_errors_sheet_is_the_input_of_a_rerun(tmp_path: Path) -> None:
    write_report(a_run(["NUMERO", "VALOR"]), RECORDS, tmp_path)
    for source in (
        BotInput.from_file(str(tmp_path / "report.xlsx"), sheet="Erros"),
        BotInput.from_file(str(tmp_path / "errors.csv")),
    ):
        items = read_items(source, roots=[tmp_path], max_inline_rows=1)
        assert [dict(item.data) for item in items] == [
            {
                "NUMERO": "0002",
                "VALOR": "10,5",
                "ROW": items[0]["ROW"],
                "MOTIVO_ERRO": "processo não encontrado",
            }
        ]
        assert items[0]["ROW"] in (3, "3")


def test_many_records_in_any_order(tmp_path: Path) -> None:
    records = [success(index, {"N": index}, NUMERO=f"{index:06d}") for index in range(20_000)]
    random.Random(5).shuffle(records)
    write_report(a_run(["NUMERO"]), records, tmp_path)
    rows = read_csv(tmp_path / "successes.csv")
    assert len(rows) == 20_001
    assert rows[1] == ["000000", "2", "0"]
    assert rows[-1] == ["019999", "20001", "19999"]
    sheet = read_sheets(tmp_path / "report.xlsx")["Sucessos"]
    assert sheet[-1] == ["019999", 20001, 19999]


@pytest.mark.parametrize(
    ("run_id", "name"),
    [
        ("exec-1842", "exec-1842.zip"),
        ("exec:1842:a", "exec~1842~a.zip"),
        ("a.b_c-d", "a.b_c-d.zip"),
        ("CON", "_CON.zip"),
        ("nul.txt", "_nul.txt.zip"),
        ("com1:x", "com1~x.zip"),
        ("com1.x:y", "_com1.x~y.zip"),
        ("CONSOLE", "CONSOLE.zip"),
    ],
)
def test_report_file_name(run_id: str, name: str) -> None:
    assert report_file_name(run_id) == name


@pytest.mark.parametrize("run_id", ["", "../x", "a/b", "_x", "a b", "x" * 129])
def test_report_file_name_refuses_what_is_not_a_run_id(run_id: str) -> None:
    with pytest.raises(PayloadError, match=r"run_id is letters, digits"):
        report_file_name(run_id)


def test_local_report_store(tmp_path: Path) -> None:
    archive = write_report(a_run(["NUMERO", "VALOR"]), RECORDS, tmp_path / "run")
    store: ReportStore = LocalReportStore(tmp_path / "reports")
    location = store.store("exec:1842", archive)
    assert location == str((tmp_path / "reports" / "exec~1842.zip").resolve())
    assert Path(location).read_bytes() == archive.read_bytes()
    assert archive.exists()  # copied: storing again after a crash still works

    second = write_report(a_run(["NUMERO"]), [], tmp_path / "run2")
    assert store.store("exec:1842", second) == location
    assert Path(location).read_bytes() == second.read_bytes()
    assert sorted(path.name for path in (tmp_path / "reports").iterdir()) == ["exec~1842.zip"]


def test_local_report_store_leaves_nothing_when_the_archive_is_missing(tmp_path: Path) -> None:
    store = LocalReportStore(tmp_path / "reports")
    with pytest.raises(FileNotFoundError):
        store.store("exec-1", tmp_path / "missing.zip")
    assert list((tmp_path / "reports").iterdir()) == []
