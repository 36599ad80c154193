"""The report's workbook, written by XlsxWriter in constant-memory mode: each row goes to disk
as it is given, whatever the number of rows.

Text is always a string cell, never a formula, a number or a link (XlsxWriter's conversions are
off); numbers and booleans keep their type. The characters XML cannot hold (control characters
other than tab, LF and CR; lone surrogates; U+FFFE and U+FFFF) are dropped, and a cell is cut at
Excel's 32,767 characters. NaN and the infinities, which Excel has no number for, are empty
cells. Columns past Excel's 16,384 are left out.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, final

import xlsxwriter

from crawjud_tasks.bots.contracts import Cell

__all__ = ["MAX_COLUMNS", "XlsxReport"]

#: The columns a sheet holds.
MAX_COLUMNS = 16_384
_MAX_TEXT = 32_767
_NOT_IN_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


@final
class XlsxReport:
    """A workbook of sheets written row by row (each sheet's rows in order)."""

    __slots__ = ("_book", "_next", "_sheets")

    def __init__(self, path: Path, sheets: Sequence[str]) -> None:
        self._book: Any = xlsxwriter.Workbook(
            str(path),
            {
                "constant_memory": True,
                "strings_to_numbers": False,
                "strings_to_formulas": False,
                "strings_to_urls": False,
                "use_zip64": True,
            },
        )
        self._sheets: list[Any] = [self._book.add_worksheet(name) for name in sheets]
        self._next = [0] * len(sheets)

    def row(self, sheet: int, cells: Sequence[Cell]) -> None:
        """Append a row to sheet number ``sheet``."""
        worksheet = self._sheets[sheet]
        number = self._next[sheet]
        self._next[sheet] = number + 1
        write_string = worksheet.write_string
        for column, cell in enumerate(cells[:MAX_COLUMNS]):
            if cell is None:
                continue
            if isinstance(cell, str):
                text = _NOT_IN_XML.sub("", cell) if _NOT_IN_XML.search(cell) else cell
                write_string(number, column, text[:_MAX_TEXT])
            elif isinstance(cell, bool):
                worksheet.write_boolean(number, column, cell)
            elif isinstance(cell, int) or math.isfinite(cell):
                worksheet.write_number(number, column, cell)

    def close(self) -> None:
        """Finish the workbook (the file is complete once this returns)."""
        self._book.close()
