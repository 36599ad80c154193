"""XLSX inputs: the rows of a workbook's sheet, read by python-calamine (the ``xlsx`` extra).

calamine is a Rust reader: fast (a 100,000-row sheet in well under a second) and safe with
XML: it expands no entity, external or internal, so an XXE or "billion laughs" payload reads as
text or fails. It loads the sheet whole, so the workbook is checked before it is opened:

- the zip's parts, unpacked, hold at most ``bots.max_xlsx_unpacked_bytes`` together (each part
  is inflated and counted here, whatever sizes its header claims: a "zip bomb" is refused before
  calamine sees it);
- no run of bytes between two ``<`` is longer than a cell may be (``bots.max_cell_chars``, at 6
  bytes a character: UTF-8 and entities, plus the tag's own bytes): a 150 MiB cell in a 151 KiB
  file is refused without being loaded. The check jumps from each ``<`` to the last one at
  most that far (a ``bytes.rfind``, C speed), so it costs little more than the inflating.

Only the named columns of the header are read (at most ``bots.max_columns``).
"""

from __future__ import annotations

import datetime as dt
import importlib
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crawjud_tasks.errors import BotParameterError

if TYPE_CHECKING:
    from crawjud_tasks.bots._inputs import InputLimits
    from crawjud_tasks.bots.contracts import Cell

__all__ = ["xlsx_rows"]

#: Whole floats below this are exact, and read as ints.
_EXACT_FLOAT = 2.0**53
_HALF_SECOND = dt.timedelta(microseconds=500_000)
#: Bytes of a part inflated at once while it is checked.
_BLOCK = 1 << 20
#: Bytes a character of a cell may take in the XML (UTF-8, or an entity such as ``&quot;``).
_BYTES_PER_CHAR = 6
#: Bytes of the tag between a ``<`` and its cell's text (``t xml:space="preserve">``...).
_TAG_BYTES = 1024


def xlsx_rows(
    path: Path, sheet: str | None, where: str, limits: InputLimits
) -> Iterator[Sequence[Cell]]:
    """The rows of the sheet (the first by default), row 1 first, checked as the module says.

    Raises:
        BotParameterError: python-calamine is missing, the workbook is damaged, too big
            unpacked, has a cell too long, or no such sheet.
    """
    try:
        # Imported here: python-calamine is the optional ``xlsx`` extra.
        calamine: Any = importlib.import_module("python_calamine")
    except ImportError as exc:
        msg = (
            f"{where} is an XLSX workbook, and reading one needs python-calamine: install the "
            "xlsx extra on the worker (pip install 'crawjud-tasks[xlsx]'), or pass a .csv file"
        )
        raise BotParameterError(msg) from exc
    _check_package(path, where, limits)
    try:
        workbook: Any = calamine.CalamineWorkbook.from_path(str(path))
    except Exception as exc:  # a damaged workbook fails in the zip or the XML
        raise _unreadable(where, exc) from exc
    try:
        names: list[str] = list(workbook.sheet_names)
        if not names:
            msg = f"{where} has no worksheet: put the items on its first sheet"
            raise BotParameterError(msg)
        if sheet is not None and sheet not in names:
            listed = ", ".join(repr(name) for name in names)
            msg = (
                f"{where} has no sheet {sheet!r}; its sheets are {listed}: pass one of them as "
                "sheet=, or none for the first"
            )
            raise BotParameterError(msg)
        try:
            worksheet: Any = workbook.get_sheet_by_name(sheet if sheet is not None else names[0])
        except Exception as exc:
            raise _unreadable(where, exc) from exc
        yield from _sheet_rows(worksheet, where, limits)
    finally:
        workbook.close()


def _sheet_rows(worksheet: Any, where: str, limits: InputLimits) -> Iterator[Sequence[Cell]]:
    start = worksheet.start
    first_row, first_column = (int(start[0]), int(start[1])) if start else (0, 0)
    padding: list[Cell] = [None] * first_column
    for _ in range(first_row):  # empty rows above the data: row 1 is the header, as in Excel
        yield []
    width: int | None = None
    most = limits.max_cell_chars
    try:
        rows: Iterator[list[object]] = worksheet.iter_rows()
        for values in rows:
            # Text and whole numbers inline (most cells), the rest by _cell.
            cells: list[Cell] = [
                (value.strip() or None)
                if type(value) is str and len(value) <= most
                else value
                if type(value) is int
                else _cell(value, most, where)
                for value in values
            ]
            if first_column:
                cells = [*padding, *cells]
            if width is None:  # the header: read up to its last named column, at most
                width = _header_width(cells, where, limits.max_columns)
            yield cells[:width]
    except BotParameterError:
        raise
    except Exception as exc:  # read lazily: damage may show in any row
        raise _unreadable(where, exc) from exc


def _header_width(header: list[Cell], where: str, max_columns: int) -> int:
    named = [position for position, cell in enumerate(header) if cell is not None]
    if len(named) > max_columns:
        msg = (
            f"row 1 of {where} has {len(named)} named columns, more than bots.max_columns "
            f"({max_columns}): remove the columns the bot does not need"
        )
        raise BotParameterError(msg)
    return named[-1] + 1 if named else 0


def _cell(value: object, max_chars: int, where: str) -> Cell:
    if isinstance(value, str):
        if len(value) > max_chars:
            raise _too_long(where, max_chars)
        return value.strip() or None
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() and abs(value) < _EXACT_FLOAT else value
    if isinstance(value, (dt.date, dt.time)):
        return _iso(value)
    return str(value).strip() or None  # a duration


def _iso(value: dt.date | dt.time) -> str:
    """ISO text, rounded to the second (Excel keeps times as fractions of a day)."""
    if isinstance(value, dt.datetime):
        value = (value + _HALF_SECOND).replace(microsecond=0)
        return value.date().isoformat() if value.time() == dt.time() else value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    moment = dt.datetime.combine(dt.date(2000, 1, 1), value) + _HALF_SECOND
    return moment.time().replace(microsecond=0).isoformat()


def _check_package(path: Path, where: str, limits: InputLimits) -> None:
    """Inflate every part, counting: refuse a workbook too big unpacked or a text run too long
    for a cell, before anything loads it."""
    budget = limits.max_xlsx_unpacked_bytes
    longest = limits.max_cell_chars * _BYTES_PER_CHAR + _TAG_BYTES
    try:
        with zipfile.ZipFile(path) as package:
            members = package.infolist()
            if sum(member.file_size for member in members) > budget:
                raise _too_big(where, budget)
            for member in members:
                run = 0  # bytes since the last "<"
                with package.open(member) as part:
                    while block := part.read(_BLOCK):
                        budget -= len(block)
                        if budget < 0:
                            raise _too_big(where, limits.max_xlsx_unpacked_bytes)
                        run = _run_after(block, run, longest)
                        if run < 0:
                            raise _too_long(where, limits.max_cell_chars)
    except BotParameterError:
        raise
    except Exception as exc:  # not a zip, a damaged part, a bad CRC
        raise _unreadable(where, exc) from exc


def _run_after(block: bytes, run: int, longest: int) -> int:
    """The bytes after ``block``'s last ``<`` (``run`` came before it), or -1 if a run of bytes
    without ``<`` is longer than ``longest``.

    From each ``<``, the next one looked for is the last within ``longest + 1`` bytes: every
    gap up to it is shorter, and none is found only where a run is too long.
    """
    first = block.find(b"<")
    if first < 0:
        run += len(block)
        return run if run <= longest else -1
    if run + first > longest:
        return -1
    last = first
    while (reach := last + longest + 2) <= len(block):
        last = block.rfind(b"<", last + 1, reach)
        if last < 0:
            return -1
    last = block.rfind(b"<", last)  # the block's last "<", within reach
    return len(block) - last - 1


def _too_big(where: str, budget: int) -> BotParameterError:
    return BotParameterError(
        f"{where} unpacks to more than bots.max_xlsx_unpacked_bytes ({budget} bytes): split "
        "it into smaller workbooks, or save it as CSV"
    )


def _too_long(where: str, max_chars: int) -> BotParameterError:
    return BotParameterError(
        f"{where} has a cell longer than bots.max_cell_chars ({max_chars} characters): shorten "
        "that cell"
    )


def _unreadable(where: str, exc: Exception) -> BotParameterError:
    reason = f"{type(exc).__name__}: {exc}".replace("\n", " ")[:300]
    return BotParameterError(
        f"{where} cannot be read as an XLSX workbook ({reason}): open it in Excel and save it "
        "again as .xlsx"
    )
