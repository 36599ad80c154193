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
import dataclasses
import io
import stat
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from crawjud_tasks.bots._bot import Item
from crawjud_tasks.bots._xlsx_input import xlsx_rows
from crawjud_tasks.bots.contracts import BotInput, Cell
from crawjud_tasks.errors import BotParameterError

if TYPE_CHECKING:
    from crawjud_tasks._settings import BotSettings

__all__ = ["InputLimits", "ItemSource", "open_items", "read_items"]

_SUFFIXES = (".csv", ".xlsx")
_DELIMITERS = (";", ",", "\t")
_BOMS = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_BLOCK = 1 << 20


@dataclasses.dataclass(frozen=True, slots=True)
class InputLimits:
    """How big an input may be (the ``bots.max_*`` settings)."""

    max_inline_rows: int = 1000
    max_input_bytes: int = 256 * 1024 * 1024
    max_input_rows: int = 2_000_000
    max_xlsx_unpacked_bytes: int = 512 * 1024 * 1024
    max_cell_chars: int = 32_767
    max_columns: int = 16_000

    @classmethod
    def of(cls, settings: BotSettings) -> InputLimits:
        """The limits ``settings`` set."""
        return cls(
            max_inline_rows=settings.max_inline_rows,
            max_input_bytes=settings.max_input_bytes,
            max_input_rows=settings.max_input_rows,
            max_xlsx_unpacked_bytes=settings.max_xlsx_unpacked_bytes,
            max_cell_chars=settings.max_cell_chars,
            max_columns=settings.max_columns,
        )


@dataclasses.dataclass(frozen=True, slots=True)
class ItemSource:
    """An input opened: its columns, and its items read as they are iterated (a damaged row or
    a limit passed raises :class:`BotParameterError` then)."""

    columns: list[str]
    items: Iterator[Item]


def read_items(
    source: BotInput,
    *,
    roots: Sequence[Path],
    max_inline_rows: int,
    limits: InputLimits | None = None,
) -> list[Item]:
    """The items of a run's input, in input order (all in memory: see :func:`open_items`).

    Args:
        source: The run's input: a file (read on this machine) or inline rows.
        roots: The folders input files may come from (``bots.allowed_roots``); a file must
            resolve, symlinks followed, inside one of them.
        max_inline_rows: The most inline rows accepted (``bots.max_inline_rows``).
        limits: The other limits (default: the settings' defaults).

    Returns:
        One item per non-empty row, ``index`` from 0.

    Raises:
        BotParameterError: the file is outside the roots, missing, not a ``.csv`` or ``.xlsx``
            file, unreadable, too big, has no such sheet, no header, duplicate column names or
            no rows; or there are too many inline rows. The message says what to fix.
    """
    limits = dataclasses.replace(limits or InputLimits(), max_inline_rows=max_inline_rows)
    return list(open_items(source, roots=roots, limits=limits).items)


def open_items(source: BotInput, *, roots: Sequence[Path], limits: InputLimits) -> ItemSource:
    """The input opened: its header read and checked, its items streamed.

    Raises:
        BotParameterError: as :func:`read_items` (the rows' errors when they are iterated).
    """
    if source.file is None:
        items = _inline_items(source.rows, limits.max_inline_rows)
        return ItemSource(list(items[0].data), iter(items))
    where = f"input file {source.file!r}"
    path = _input_path(source.file, roots, where)
    size = path.stat().st_size
    if size > limits.max_input_bytes:
        msg = (
            f"{where} has {size} bytes, more than bots.max_input_bytes "
            f"({limits.max_input_bytes}): split it into smaller inputs"
        )
        raise BotParameterError(msg)
    rows: Iterator[Sequence[Cell]]
    if path.suffix.lower() == ".csv":
        if source.sheet is not None:
            msg = (
                f"{where} is a CSV file, which has no sheets: drop sheet={source.sheet!r}, or "
                "pass the .xlsx workbook"
            )
            raise BotParameterError(msg)
        rows = _csv_rows(path, where, limits)
    else:
        rows = xlsx_rows(path, source.sheet, where, limits)
    return _file_items(rows, where, limits)


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


def _file_items(rows: Iterator[Sequence[Cell]], where: str, limits: InputLimits) -> ItemSource:
    header = next(rows, None)
    if header is None:
        msg = f"{where} is empty: put the column names in row 1 and one item per row below"
        raise BotParameterError(msg)
    columns, keep = _columns(header, where)
    if not columns:
        msg = f"row 1 of {where} has no column names: put the column names in row 1"
        raise BotParameterError(msg)
    if len(columns) > limits.max_columns:
        msg = (
            f"row 1 of {where} has {len(columns)} named columns, more than bots.max_columns "
            f"({limits.max_columns}): remove the columns the bot does not need"
        )
        raise BotParameterError(msg)
    return ItemSource(columns, _items(rows, columns, keep, where, limits.max_input_rows))


def _items(
    rows: Iterator[Sequence[Cell]], columns: list[str], keep: list[int], where: str, most: int
) -> Iterator[Item]:
    width = len(columns)
    contiguous = keep == list(range(width))
    index = 0
    for number, cells in enumerate(rows, start=2):
        values = cells
        if not contiguous:
            size = len(cells)
            values = [cells[position] if position < size else None for position in keep]
        elif len(cells) != width:  # a short row, or cells right of the last named column
            values = [*cells[:width], *([None] * (width - len(cells)))]
        if values.count(None) == width:
            continue
        if index == most:
            msg = (
                f"{where} has more than bots.max_input_rows ({most}) rows: split it into "
                "smaller inputs"
            )
            raise BotParameterError(msg)
        yield Item(index, number, dict(zip(columns, values, strict=True)))
        index += 1
    if not index:
        msg = f"{where} has no rows under its header: put one item per row below row 1"
        raise BotParameterError(msg)


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


def _csv_rows(path: Path, where: str, limits: InputLimits) -> Iterator[Sequence[Cell]]:
    encoding = _csv_encoding(path, where)
    try:
        file = path.open(encoding=encoding, newline="")
    except OSError as exc:
        msg = f"{where} cannot be read ({exc.strerror}): let the worker's user read it"
        raise BotParameterError(msg) from exc
    with file:
        first_line = file.readline(limits.max_cell_chars * limits.max_columns)
        bare = first_line.rstrip("\r\n")
        if bare.lower().startswith("sep=") and len(bare) == 5:
            delimiter = bare[4]  # Excel's hint line: not a row of the sheet
            first_line = ""
        else:
            delimiter = max(_DELIMITERS, key=first_line.count)
        lines = _chain(io.StringIO(first_line, newline=""), file)
        reader = csv.reader(lines, delimiter=delimiter)
        most = limits.max_cell_chars
        try:
            for row in reader:
                if max(map(len, row), default=0) > most:
                    msg = (
                        f"{where} has a cell longer than bots.max_cell_chars ({most} "
                        f"characters) at line {reader.line_num}: shorten it"
                    )
                    raise BotParameterError(msg)
                yield [cell.strip() or None for cell in row]
        except csv.Error as exc:
            msg = f"{where} cannot be read as CSV (line {reader.line_num}: {exc}): fix that line"
            raise BotParameterError(msg) from exc
        except UnicodeDecodeError as exc:
            msg = f"{where} is not {encoding} text throughout: save it again as CSV UTF-8"
            raise BotParameterError(msg) from exc


def _chain(*files: Iterator[str]) -> Iterator[str]:
    for file in files:
        yield from file


def _csv_encoding(path: Path, where: str) -> str:
    """The file's encoding: by its byte-order mark, else UTF-8 if all of it decodes, else
    cp1252 if it decodes, else latin-1."""
    try:
        with path.open("rb") as file:
            start = file.read(4)
            for bom, encoding in _BOMS:
                if start.startswith(bom):
                    return encoding
            for encoding in ("utf-8", "cp1252"):  # Excel pt_BR's "CSV (separado por vírgulas)"
                file.seek(0)
                if _decodes(file, encoding, where):
                    return encoding
    except OSError as exc:
        msg = f"{where} cannot be read ({exc.strerror}): let the worker's user read it"
        raise BotParameterError(msg) from exc
    return "latin-1"  # decodes any bytes


def _decodes(file: BinaryIO, encoding: str, where: str) -> bool:
    decoder = codecs.getincrementaldecoder(encoding)()
    try:
        while block := file.read(_BLOCK):
            if b"\x00" in block:
                msg = (
                    f"{where} is not a text file (it has NUL bytes): save it from Excel as CSV, "
                    "or name an XLSX workbook .xlsx"
                )
                raise BotParameterError(msg)
            decoder.decode(block)
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True
