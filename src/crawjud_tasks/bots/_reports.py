"""A run's report: what each item gave, as CSV files, an XLSX workbook and a summary, in a zip.

:func:`write_report` writes into the run's working folder, then zips the files there:

- ``successes.csv``: the items that succeeded: the input columns, ``ROW`` (the item's row in the
  input), then the columns the bot returned (their union, first seen first). A returned column
  named like an input column replaces that cell.
- ``errors.csv``: the items that failed: the input columns, ``ROW`` and ``MOTIVO_ERRO`` (the
  reason; CrawJUD's name). Failed items only, so that the file, once fixed, is a re-run's input.
- ``skipped.csv``: the items the bot skipped: the input columns, ``ROW`` and ``MOTIVO`` (why).
  Apart from the errors: a skip is no failure, and a re-run of the errors should not redo it.
- ``report.xlsx``: the same tables as the sheets ``Sucessos``, ``Erros`` and ``Ignorados``, with
  typed cells (a number stays a number). Written unless ``xlsx=False``, by XlsxWriter in
  constant-memory mode (see ``_xlsx_writer``).
- ``summary.json``: the run's id, bot, user, status, counts, start and end (ISO 8601), seconds,
  error, and the report's files.

Each file is written even with no rows (its header alone), so a reader always finds them all.
Rows are in input order, one per item: when an item's record comes twice (a resumed run), the
later one wins. :func:`write_report_stream` writes records given in input order, once each, as
they come (a run's report parts): every file is written row by row, nothing is held.

The CSV files are what Excel pt_BR opens right with a double-click: UTF-8 with a byte-order mark
(without it Excel reads cp1252 and breaks the accents), ``;`` between cells (its list separator,
as the decimal separator is the comma), CRLF line ends, quotes only where needed. Floats are
written with a decimal comma (``1234,56``) so that Excel pt_BR reads them as numbers; booleans as
``TRUE``/``FALSE``; empty cells as nothing. NaN and the infinities, which no spreadsheet holds, are
empty cells in the CSV files and in the workbook.

Formulas are neutralised (OWASP's "CSV injection"): a text cell, header, input, returned data or
reason, that starts with ``=``, ``+``, ``-``, ``@``, a tab or a CR gets a leading ``'``, in the
CSV files and in the workbook, so no spreadsheet runs it (``=cmd|' /C calc'!A0`` stays text).
Numbers are never changed: the int -2 stays the number -2, while the text ``"-2"`` (every CSV input
cell is text) becomes ``'-2``. In the workbook, text is always a string cell, never a formula.

File names: a run id is ``[A-Za-z0-9][A-Za-z0-9_.:-]*``, and Windows refuses ``:`` in file names.
:func:`report_file_name` writes ``:`` as ``~``, which no run id has (so two run ids never share a
name) and which URLs keep as it is; a name Windows reserves (``CON``, ``NUL``, ``COM1``... before
the first dot) gets a leading ``_``, which no run id starts with.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import json
import math
import os
import re
import shutil
import tempfile
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, Protocol, final

from crawjud_tasks.bots._bot import ItemRecord
from crawjud_tasks.bots._xlsx_writer import XlsxReport
from crawjud_tasks.bots.contracts import Cell, RunCounts, RunStatus
from crawjud_tasks.errors import PayloadError

__all__ = [
    "ERROR_REASON",
    "ROW",
    "SKIP_REASON",
    "LocalReportStore",
    "ReportRun",
    "ReportStore",
    "report_file_name",
    "write_report",
    "write_report_stream",
]

#: The column with the item's row in the input.
ROW = "ROW"
#: The column with a failed item's reason (CrawJUD's name).
ERROR_REASON = "MOTIVO_ERRO"
#: The column with the reason an item was skipped.
SKIP_REASON = "MOTIVO"

_XLSX_FILE = "report.xlsx"
_SUMMARY_FILE = "summary.json"
_FORMULAS = ("=", "+", "-", "@", "\t", "\r")
_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}")
_WINDOWS_RESERVED = frozenset(
    {"CON", "PRN", "AUX", "NUL"}
    | {f"COM{digit}" for digit in range(10)}
    | {f"LPT{digit}" for digit in range(10)}
)


@dataclasses.dataclass(frozen=True, slots=True)
class ReportRun:
    """What a report says about its run, besides the items."""

    run_id: str
    bot: str
    user_id: int | str
    status: RunStatus
    counts: RunCounts
    started_at: dt.datetime
    finished_at: dt.datetime
    #: Why the run failed, when it did.
    error: str | None
    #: The input's columns, in input order.
    columns: Sequence[str]


class ReportStore(Protocol):
    """Where finished reports are kept (a folder, an object store...)."""

    def store(self, run_id: str, archive: Path) -> str:
        """Keep the run's report ``archive`` (a zip); return where it now is (a path or URL)."""
        ...


@final
class LocalReportStore:
    """Reports kept in a local folder, as ``<folder>/<run id>.zip`` (see
    :func:`report_file_name`)."""

    __slots__ = ("folder",)

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    def store(self, run_id: str, archive: Path) -> str:
        """Copy ``archive`` into the folder, replacing an earlier report of the run at once.

        A copy, not a move: storing again after a crash finds the archive where it was.

        Returns:
            The report's absolute path.
        """
        folder = self.folder.resolve()
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / report_file_name(run_id)
        handle, name = tempfile.mkstemp(dir=folder, prefix=f".{target.name}.", suffix=".tmp")
        temporary = Path(name)
        try:
            with os.fdopen(handle, "wb") as out, archive.open("rb") as source:
                shutil.copyfileobj(source, out)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, target)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        return str(target)


def report_file_name(run_id: str) -> str:
    """The file name of a run's report archive, safe on Windows too (``exec:7`` ->
    ``exec~7.zip``).

    Raises:
        PayloadError: ``run_id`` is not a run id.
    """
    if not _RUN_ID.fullmatch(run_id):
        msg = (
            "run_id is letters, digits, '_', '.', ':' and '-' (at most 128, starting with a "
            f"letter or digit), got {run_id!r}"
        )
        raise PayloadError(msg)
    name = run_id.replace(":", "~")
    if name.split(".", 1)[0].upper() in _WINDOWS_RESERVED:
        name = f"_{name}"
    return f"{name}.zip"


_TABLES = (
    ("succeeded", "successes.csv", "Sucessos"),
    ("failed", "errors.csv", "Erros"),
    ("skipped", "skipped.csv", "Ignorados"),
)


def write_report(
    run: ReportRun, records: Iterable[ItemRecord], folder: Path, *, xlsx: bool | None = None
) -> Path:
    """Write the run's report files into ``folder`` and zip them there.

    Args:
        run: The run the report is about.
        records: The items' outcomes, in any order (held in memory: a run's own report is
            written by :func:`write_report_stream`).
        folder: The run's working folder (made if missing).
        xlsx: Also write ``report.xlsx`` (``None``, the default, is ``True``).

    Returns:
        The zip: ``<folder>/<run id>.zip`` (see :func:`report_file_name`).

    Raises:
        PayloadError: ``run.run_id`` is not a run id (nothing is written).
    """
    latest = {record.index: record for record in records}
    ordered = [latest[index] for index in sorted(latest)]
    inputs = dict.fromkeys(run.columns)
    returned: dict[str, None] = {}
    for record in ordered:
        inputs.update(dict.fromkeys(record.input))  # a column the run's columns left out
        if record.status == "succeeded":
            returned.update(dict.fromkeys(record.data))
    run = dataclasses.replace(run, columns=list(inputs))
    return write_report_stream(run, ordered, list(returned), folder, xlsx=xlsx)


def write_report_stream(
    run: ReportRun,
    records: Iterable[ItemRecord],
    returned: Sequence[str],
    folder: Path,
    *,
    xlsx: bool | None = None,
) -> Path:
    """Write the report of ``records`` (in input order, each item once) row by row, and zip it.

    Args:
        run: The run the report is about.
        records: The items' outcomes, in input order, once each.
        returned: The columns the bot returned for successes (their union, first seen first).
        folder: The run's working folder (made if missing).
        xlsx: Also write ``report.xlsx`` (``None``, the default, is ``True``).

    Returns:
        The zip: ``<folder>/<run id>.zip`` (see :func:`report_file_name`).

    Raises:
        PayloadError: ``run.run_id`` is not a run id (nothing is written).
    """
    archive = folder / report_file_name(run.run_id)  # checks the run id before any writing
    folder.mkdir(parents=True, exist_ok=True)
    columns = list(run.columns)
    headers = {
        "succeeded": _columns(*columns, ROW, *returned),
        "failed": _columns(*columns, ROW, ERROR_REASON),
        "skipped": _columns(*columns, ROW, SKIP_REASON),
    }
    files = [file for _, file, _ in _TABLES]
    book = (
        XlsxReport(folder / _XLSX_FILE, [sheet for *_, sheet in _TABLES])
        if xlsx is not False
        else None
    )
    with (
        _open_csv(folder / files[0]) as ok,
        _open_csv(folder / files[1]) as bad,
        _open_csv(folder / files[2]) as skip,
    ):
        writers = {
            name: _csv_writer(file) for name, file in zip(headers, (ok, bad, skip), strict=True)
        }
        sheets = {name: number for number, name in enumerate(headers)}
        for name, header in headers.items():
            neutral = [_neutral(column) for column in header]
            writers[name].writerow(neutral)
            if book is not None:
                book.row(sheets[name], neutral)
        for record in records:
            status = record.status
            cells: dict[str, Any] = dict(record.input)
            if status == "succeeded":
                cells.update(record.data)
                cells[ROW] = record.row
            else:
                cells[ROW] = record.row
                cells[ERROR_REASON if status == "failed" else SKIP_REASON] = record.reason
            row = _row(headers[status], cells)
            writers[status].writerow(
                [_csv_text(cell) if isinstance(cell, (float, bool)) else cell for cell in row]
            )
            if book is not None:
                book.row(sheets[status], row)
    if book is not None:
        book.close()
        files.append(_XLSX_FILE)
    _write_summary(folder / _SUMMARY_FILE, run, files)
    return _zip(folder, [*files, _SUMMARY_FILE], archive)


def _open_csv(path: Path) -> IO[str]:
    return path.open("w", encoding="utf-8-sig", errors="replace", newline="")


def _csv_writer(file: IO[str]) -> Any:
    # The writer writes None as nothing and ints as digits; floats and booleans are ours.
    return csv.writer(file, delimiter=";", lineterminator="\r\n")


def _columns(*names: str) -> list[str]:
    return list(dict.fromkeys(names))


def _row(columns: list[str], cells: Mapping[str, Cell]) -> list[Cell]:
    """The cells in column order, formulas neutralised (inline: it runs for every cell)."""
    return [
        f"'{cell}"
        if isinstance(cell := cells.get(column), str) and cell.startswith(_FORMULAS)
        else cell
        for column in columns
    ]


def _neutral(text: str) -> str:
    return f"'{text}" if text.startswith(_FORMULAS) else text


def _csv_text(cell: float) -> str:
    if isinstance(cell, bool):
        return "TRUE" if cell else "FALSE"
    return repr(cell).replace(".", ",") if math.isfinite(cell) else ""


def _write_summary(path: Path, run: ReportRun, files: list[str]) -> None:
    counts = run.counts
    summary = {
        "run_id": run.run_id,
        "bot": run.bot,
        "user_id": run.user_id,
        "status": run.status.value,
        "counts": {
            "total": counts.total,
            "succeeded": counts.succeeded,
            "failed": counts.failed,
            "skipped": counts.skipped,
        },
        "started_at": run.started_at.isoformat(),
        "finished_at": run.finished_at.isoformat(),
        "seconds": (run.finished_at - run.started_at).total_seconds(),
        "error": run.error,
        "files": files,
    }
    text = json.dumps(summary, ensure_ascii=False, indent=2)
    path.write_text(f"{text}\n", encoding="utf-8", errors="replace")


def _zip(folder: Path, names: list[str], target: Path) -> Path:
    temporary = target.with_name(f".{target.name}.tmp")
    with zipfile.ZipFile(
        temporary, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1
    ) as archive:
        for name in names:
            # An XLSX file is a zip already: compressing it again costs time and saves nothing.
            stored = zipfile.ZIP_STORED if name.endswith(".xlsx") else None
            archive.write(folder / name, arcname=name, compress_type=stored)
    os.replace(temporary, target)
    return target
