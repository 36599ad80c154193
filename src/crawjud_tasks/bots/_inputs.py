"""A run's items, read from a CSV or XLSX file inside the allowed roots, or from inline rows.

What a bot sees, whatever the source:

- Column names are trimmed and upper-cased (``" numero_processo "`` -> ``NUMERO_PROCESSO``), as in
  CrawJUD's spreadsheets. A column without a name is dropped with its cells (so are cells to the
  right of the last named column); two columns with one name are refused.
- Text cells are trimmed, and an empty cell is ``None``.
- CSV cells stay text: no number is guessed, so ``"0001234-56.2024.8.26.0100"`` and ``"007"``
  keep their zeros, and ``"1234,56"`` is the bot's to parse.
- XLSX cells keep their type (text, ``bool``, ``int``, ``float``). Excel stores every number as a
  float: a whole one (``12.0``) comes as the ``int`` 12 (below 2**53, where floats are exact), so
  an id typed as a number reads back as ``12``, not ``12.0``. A formula comes as the value Excel
  last saved for it.
- XLSX dates come as ISO text, rounded to the second: ``"2026-03-01"``, or
  ``"2026-03-01T14:30:00"`` when the cell has a time of day; a time alone is ``"14:30:00"``. ISO
  text, not CrawJUD's ``dd/mm/YYYY``: it sorts, ``date.fromisoformat`` parses it, and it travels
  through JSON unchanged. Durations come as their text (``"1 day, 2:00:00"``).
- Fully empty rows are skipped. ``Item.row`` stays the row's number in the spreadsheet (the header
  is row 1, so the first item is row 2), and ``Item.index`` counts the items from 0.
- Inline rows get the rows they would have under a header: the first is row 2.
- Every item has every column (``None`` where its row has no cell).

A CSV file is decoded by its byte-order mark (UTF-8 or UTF-16), else as UTF-8, else as cp1252
(Excel pt_BR's "CSV (separado por vírgulas)"), else as latin-1. Its delimiter is the one of
``;``, ``,`` and tab found most often in the header line (``;`` when none is), unless the file
starts with Excel's ``sep=`` line. A file with a header and no rows under it is refused: a run of
nothing is a mistake.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import importlib
import io
import stat
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from crawjud_tasks.bots._bot import Item
from crawjud_tasks.bots.contracts import BotInput, Cell
from crawjud_tasks.errors import BotParameterError

__all__ = ["read_items"]

_SUFFIXES = (".csv", ".xlsx")
_DELIMITERS = (";", ",", "\t")
_BOMS = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
#: Whole floats below this are exact, and read as ints.
_EXACT_FLOAT = 2.0**53
_HALF_SECOND = dt.timedelta(microseconds=500_000)


def read_items(source: BotInput, *, roots: Sequence[Path], max_inline_rows: int) -> list[Item]:
    """The items of a run's input, in input order.

    Args:
        source: The run's input: a file (read on this machine) or inline rows.
        roots: The folders input files may come from (``bots.allowed_roots``); a file must
            resolve, symlinks followed, inside one of them.
        max_inline_rows: The most inline rows accepted (``bots.max_inline_rows``).

    Returns:
        One item per non-empty row, ``index`` from 0.

    Raises:
        BotParameterError: the file is outside the roots, missing, not a ``.csv`` or ``.xlsx``
            file, unreadable, has no such sheet, no header, duplicate column names or no rows;
            or there are too many inline rows. The message says what to fix.
    """
    if source.file is None:
        return _inline_items(source.rows, max_inline_rows)
    where = f"input file {source.file!r}"
    path = _input_path(source.file, roots, where)
    rows: Iterator[Sequence[Cell]]
    if path.suffix.lower() == ".csv":
        if source.sheet is not None:
            msg = (
                f"{where} is a CSV file, which has no sheets: drop sheet={source.sheet!r}, or "
                "pass the .xlsx workbook"
            )
            raise BotParameterError(msg)
        rows = _csv_rows(path, where)
    else:
        rows = _xlsx_rows(path, source.sheet, where)
    return _file_items(rows, where)


def _input_path(file: str, roots: Sequence[Path], where: str) -> Path:
    if not roots:
        msg = (
            f"{where} cannot be read: no folder is allowed for input files; set "
            "bots.allowed_roots to the folders they may come from"
        )
        raise BotParameterError(msg)
    try:
        path = Path(file).resolve()
        allowed = [Path(root).resolve() for root in roots]
    except (OSError, RuntimeError) as exc:  # a symlink loop
        msg = f"{where} cannot be resolved ({exc}): pass the path of the file itself"
        raise BotParameterError(msg) from exc
    if not any(path.is_relative_to(root) for root in allowed):
        listed = ", ".join(str(root) for root in roots)
        msg = (
            f"{where} is outside bots.allowed_roots ({listed}): move it into one of these "
            "folders, or add its folder to bots.allowed_roots"
        )
        raise BotParameterError(msg)
    try:
        mode = path.stat().st_mode
    except (FileNotFoundError, NotADirectoryError) as exc:
        msg = f"{where} does not exist on the worker: check the path"
        raise BotParameterError(msg) from exc
    except OSError as exc:
        msg = f"{where} cannot be read ({exc.strerror}): let the worker's user read it"
        raise BotParameterError(msg) from exc
    if stat.S_ISDIR(mode):
        msg = f"{where} is a folder: pass the path of a .csv or .xlsx file"
        raise BotParameterError(msg)
    if not stat.S_ISREG(mode):
        msg = f"{where} is not a regular file: pass the path of a .csv or .xlsx file"
        raise BotParameterError(msg)
    if path.suffix.lower() not in _SUFFIXES:
        msg = (
            f"{where} is not a .csv or .xlsx file: save it from Excel as an .xlsx workbook or "
            "as CSV"
        )
        raise BotParameterError(msg)
    return path


def _file_items(rows: Iterator[Sequence[Cell]], where: str) -> list[Item]:
    header = next(rows, None)
    if header is None:
        msg = f"{where} is empty: put the column names in row 1 and one item per row below"
        raise BotParameterError(msg)
    columns, keep = _columns(header, where)
    if not columns:
        msg = f"row 1 of {where} has no column names: put the column names in row 1"
        raise BotParameterError(msg)
    width = len(columns)
    contiguous = keep == list(range(width))
    items: list[Item] = []
    for number, cells in enumerate(rows, start=2):
        values = cells
        if not contiguous:
            size = len(cells)
            values = [cells[position] if position < size else None for position in keep]
        elif len(cells) != width:  # a short row, or cells right of the last named column
            values = [*cells[:width], *([None] * (width - len(cells)))]
        if values.count(None) == width:
            continue
        items.append(Item(len(items), number, dict(zip(columns, values, strict=True))))
    if not items:
        msg = f"{where} has no rows under its header: put one item per row below row 1"
        raise BotParameterError(msg)
    return items


def _columns(header: Sequence[Cell], where: str) -> tuple[list[str], list[int]]:
    """The normalised column names, and the positions of the named columns."""
    first: dict[str, Cell] = {}
    keep: list[int] = []
    for position, cell in enumerate(header):
        name = _column_name(cell)
        if not name:
            continue
        if name in first:
            msg = (
                f"{where} has two columns named {name!r} ({first[name]!r} and {cell!r}) once "
                "names are trimmed and upper-cased: rename or remove one"
            )
            raise BotParameterError(msg)
        first[name] = cell
        keep.append(position)
    return list(first), keep


def _column_name(cell: Cell) -> str:
    return "" if cell is None else str(cell).strip().upper()


def _inline_items(rows: Sequence[Mapping[str, Cell]], max_rows: int) -> list[Item]:
    if len(rows) > max_rows:
        msg = (
            f"{len(rows)} inline rows is more than bots.max_inline_rows ({max_rows}): write them "
            "to a CSV or XLSX file inside bots.allowed_roots and pass BotInput.from_file(path)"
        )
        raise BotParameterError(msg)
    columns: dict[str, None] = {}
    named_rows: list[dict[str, Cell]] = []
    for number, row in enumerate(rows, start=2):
        where = f"inline row {number}"
        names, keep = _columns(list(row), where)
        cells = list(row.values())
        named = {
            name: _inline_cell(cells[at], where, name) for name, at in zip(names, keep, strict=True)
        }
        columns.update(dict.fromkeys(named))
        named_rows.append(named)
    items: list[Item] = []
    for number, named in enumerate(named_rows, start=2):
        data = {name: named.get(name) for name in columns}
        if any(value is not None for value in data.values()):
            items.append(Item(len(items), number, data))
    if not items:
        msg = "every inline row is empty: give at least one cell a value"
        raise BotParameterError(msg)
    return items


def _inline_cell(value: object, where: str, column: str) -> Cell:
    if isinstance(value, str):
        return value.strip() or None
    if value is None or isinstance(value, (bool, int, float)):
        return value
    msg = (
        f"{where}, column {column!r}: a cell is text, a number, a boolean or empty, "
        f"got {type(value).__name__}"
    )
    raise BotParameterError(msg)


def _csv_rows(path: Path, where: str) -> Iterator[Sequence[Cell]]:
    text = _csv_text(path, where)
    first_line = text[: text.find("\n")] if "\n" in text else text
    if first_line.lower().startswith("sep=") and len(first_line.rstrip("\r")) == 5:
        delimiter = first_line[4]  # Excel's hint line: not a row of the sheet
        text = text[len(first_line) + 1 :]
    else:
        delimiter = max(_DELIMITERS, key=first_line.count)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        for row in reader:
            yield [cell.strip() or None for cell in row]
    except csv.Error as exc:
        msg = f"{where} cannot be read as CSV (line {reader.line_num}: {exc}): fix that line"
        raise BotParameterError(msg) from exc


def _csv_text(path: Path, where: str) -> str:
    try:
        data = path.read_bytes()
    except OSError as exc:
        msg = f"{where} cannot be read ({exc.strerror}): let the worker's user read it"
        raise BotParameterError(msg) from exc
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(encoding)
            except UnicodeDecodeError as exc:
                msg = f"{where} starts as {encoding} text and is not: save it again as CSV UTF-8"
                raise BotParameterError(msg) from exc
    if b"\x00" in data:
        msg = (
            f"{where} is not a text file (it has NUL bytes): save it from Excel as CSV, or name "
            "an XLSX workbook .xlsx"
        )
        raise BotParameterError(msg)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252")  # Excel pt_BR's "CSV (separado por vírgulas)"
    except UnicodeDecodeError:
        return data.decode("latin-1")  # decodes any bytes


def _xlsx_rows(path: Path, sheet: str | None, where: str) -> Iterator[Sequence[Cell]]:
    try:
        # Imported here: openpyxl is the optional ``xlsx`` extra, and ships no type information
        # (a plain module's attributes are Any at this boundary; the cells are typed at once).
        openpyxl = importlib.import_module("openpyxl")
    except ImportError as exc:
        msg = (
            f"{where} is an XLSX workbook, and reading one needs openpyxl: install the xlsx "
            "extra on the worker (pip install 'crawjud-tasks[xlsx]'), or pass a .csv file"
        )
        raise BotParameterError(msg) from exc
    try:
        workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # a damaged workbook fails anywhere in openpyxl, zipfile or XML
        raise _unreadable(where, exc) from exc
    try:
        worksheet = _worksheet(workbook, sheet, where)
        worksheet.reset_dimensions()  # read every row, whatever the file's dimension tag says
        for values in worksheet.iter_rows(values_only=True):
            yield [_xlsx_cell(value) for value in values]
    except BotParameterError:
        raise
    except Exception as exc:  # read lazily: damage may show in any row
        raise _unreadable(where, exc) from exc
    finally:
        workbook.close()


def _unreadable(where: str, exc: Exception) -> BotParameterError:
    reason = f"{type(exc).__name__}: {exc}".replace("\n", " ")
    return BotParameterError(
        f"{where} cannot be read as an XLSX workbook ({reason}): open it in Excel and save it "
        "again as .xlsx"
    )


def _worksheet(workbook: Any, sheet: str | None, where: str) -> Any:
    worksheets: list[Any] = list(workbook.worksheets)
    if not worksheets:
        msg = f"{where} has no worksheet: put the items on its first sheet"
        raise BotParameterError(msg)
    if sheet is None:
        return worksheets[0]
    for worksheet in worksheets:
        if worksheet.title == sheet:
            return worksheet
    names = ", ".join(repr(worksheet.title) for worksheet in worksheets)
    msg = (
        f"{where} has no sheet {sheet!r}; its sheets are {names}: pass one of them as sheet=, "
        "or none for the first"
    )
    raise BotParameterError(msg)


def _xlsx_cell(value: object) -> Cell:
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, float):
        return int(value) if value.is_integer() and abs(value) < _EXACT_FLOAT else value
    if isinstance(value, (dt.date, dt.time)):
        return _iso(value)
    return str(value).strip() or None


def _iso(value: dt.date | dt.time) -> str:
    """ISO text, rounded to the second (Excel keeps times as fractions of a day)."""
    if isinstance(value, dt.datetime):
        value = (value + _HALF_SECOND).replace(microsecond=0)
        return value.date().isoformat() if value.time() == dt.time() else value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    moment = dt.datetime.combine(dt.date(2000, 1, 1), value) + _HALF_SECOND
    return moment.time().replace(microsecond=0).isoformat()
