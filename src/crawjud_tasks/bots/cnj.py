"""The unified lawsuit number of Brazilian courts, and the built-in bot ``cnj.validar``.

CNJ Resolution 65/2008 gives every lawsuit a number ``NNNNNNN-DD.AAAA.J.TR.OOOO``: a sequence
(7 digits), check digits (2), the year it was filed (4), the justice segment (1), the tribunal
(2) and the origin unit (4). The check digits are ISO 7064 MOD 97-10 over the other 18 digits.

The functions here are pure and need neither Celery nor a network::

    >>> number = parse_cnj("0001234-08.2023.8.26.0100")   # or raises InvalidCnjNumber
    >>> number.tribunal_name
    'TJSP'

:class:`ValidarCnj` is the bot registered on every app as ``cnj.validar``: it checks the
``NUMERO_PROCESSO`` column of a spreadsheet; the guide "CNJ numbers" describes it.
"""

from __future__ import annotations

import calendar
import dataclasses
import re
import time
from typing import TYPE_CHECKING, ClassVar, Literal

from crawjud_tasks._retry import RetryPolicy
from crawjud_tasks.bots._bot import BaseBot, Item, ItemOutcome, NoOptions
from crawjud_tasks.errors import ItemError

if TYPE_CHECKING:
    from crawjud_tasks.bots._context import RunContext
    from crawjud_tasks.bots.contracts import Cell

__all__ = [
    "COLUMN",
    "MIN_YEAR",
    "CnjNumber",
    "InvalidCnjNumber",
    "InvalidReason",
    "ValidarCnj",
    "compute_check_digits",
    "parse_cnj",
]

#: Why a number is invalid, in the order they are checked.
InvalidReason = Literal[
    "empty", "characters", "length", "check_digits", "segment", "tribunal", "year"
]
#: The input column ``cnj.validar`` reads.
COLUMN = "NUMERO_PROCESSO"
#: The earliest year accepted. The numbering began in 2010, but older lawsuits were renumbered
#: keeping the year they were filed in.
MIN_YEAR = 1900
#: Digits in a CNJ number.
_LENGTH = 20
#: Excel keeps this many significant digits of a number cell.
_EXCEL_DIGITS = 15

_FORMATTED = re.compile(r"([0-9]{7})-([0-9]{2})\.([0-9]{4})\.([0-9])\.([0-9]{2})\.([0-9]{4})")
_SEPARATORS = frozenset("-.")
_FIELDS = (("sequence", 7), ("year", 4), ("segment", 1), ("tribunal", 2), ("origin", 4))

#: The states in the order of the resolution's annexes (code 01 is AC, 26 is SP, 27 is TO).
_STATES = (
    "AC", "AL", "AP", "AM", "BA", "CE", "DF", "ES", "GO", "MA", "MT", "MS", "MG", "PA",
    "PB", "PR", "PE", "PI", "RJ", "RN", "RS", "RO", "RR", "SC", "SE", "SP", "TO",
)  # fmt: skip
_SEGMENTS = {
    1: "Supremo Tribunal Federal",
    2: "Conselho Nacional de Justiça",
    3: "Superior Tribunal de Justiça",
    4: "Justiça Federal",
    5: "Justiça do Trabalho",
    6: "Justiça Eleitoral",
    7: "Justiça Militar da União",
    8: "Justiça Estadual",
    9: "Justiça Militar Estadual",
}
#: The state military courts (TJM) that exist: Minas Gerais, Rio Grande do Sul, São Paulo.
_STATE_MILITARY_COURTS = frozenset({"MG", "RS", "SP"})


def _tribunals() -> dict[tuple[int, str], str | None]:
    """Every (segment, TR) pair the resolution defines, with the tribunal's usual acronym.

    Superior courts and the CNJ are TR 00, the two councils (CJF, CSJT) TR 90. A pair known to
    exist whose name is not certain maps to ``None`` (state military justice outside MG, RS and
    SP, where the state's TJ judges it).
    """
    table: dict[tuple[int, str], str | None] = {
        (1, "00"): "STF",
        (2, "00"): "CNJ",
        (3, "00"): "STJ",
        (4, "90"): "CJF",
        (5, "00"): "TST",
        (5, "90"): "CSJT",
        (6, "00"): "TSE",
        (7, "00"): "STM",
    }
    table.update({(4, f"{n:02d}"): f"TRF{n}" for n in range(1, 7)})
    table.update({(5, f"{n:02d}"): f"TRT{n}" for n in range(1, 25)})
    table.update({(7, f"{n:02d}"): f"CJM {n}" for n in range(1, 13)})
    for n, state in enumerate(_STATES, start=1):
        code = f"{n:02d}"
        table[6, code] = f"TRE-{state}"
        table[8, code] = "TJDFT" if state == "DF" else f"TJ{state}"
        table[9, code] = f"TJM-{state}" if state in _STATE_MILITARY_COURTS else None
    return table


_TRIBUNALS = _tribunals()
_TRIBUNAL_RANGES = {
    1: "00",
    2: "00",
    3: "00",
    4: "01 to 06, 90",
    5: "00 to 24, 90",
    6: "00 to 27",
    7: "00 to 12",
    8: "01 to 27",
    9: "01 to 27",
}


class InvalidCnjNumber(ItemError):
    """A lawsuit number that is not a valid CNJ number: a failed item of ``cnj.validar``.

    Its message starts with the reason (``"check_digits: the check digits are 45, expected
    12"``), so that the errors sheet can be filtered by it.
    """

    def __init__(self, reason: InvalidReason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        #: Which check failed.
        self.reason: InvalidReason = reason
        #: What was wrong, without the reason.
        self.detail = detail

    def __reduce__(self) -> tuple[type[InvalidCnjNumber], tuple[InvalidReason, str]]:
        return type(self), (self.reason, self.detail)


@dataclasses.dataclass(frozen=True, slots=True)
class CnjNumber:
    """A valid CNJ lawsuit number, by field (make one with :func:`parse_cnj`)."""

    #: NNNNNNN: the lawsuit's sequence in its origin unit and year (7 digits).
    sequence: str
    #: DD: the check digits (2 digits).
    check: str
    #: AAAA: the year the lawsuit was filed.
    year: int
    #: J: the justice segment, 1 to 9.
    segment: int
    #: TR: the tribunal within the segment (2 digits).
    tribunal: str
    #: OOOO: the origin unit (4 digits; 0000 for a tribunal's own lawsuits).
    origin: str

    @property
    def digits(self) -> str:
        """The 20 digits, without separators."""
        n = self
        return f"{n.sequence}{n.check}{n.year:04d}{n.segment}{n.tribunal}{n.origin}"

    @property
    def formatted(self) -> str:
        """The canonical form ``NNNNNNN-DD.AAAA.J.TR.OOOO``."""
        n = self
        return f"{n.sequence}-{n.check}.{n.year:04d}.{n.segment}.{n.tribunal}.{n.origin}"

    @property
    def tribunal_code(self) -> str:
        """The segment and tribunal as written in the number: ``"8.26"``."""
        return f"{self.segment}.{self.tribunal}"

    @property
    def segment_name(self) -> str:
        """The justice segment in Portuguese: ``"Justiça Estadual"``."""
        return _SEGMENTS[self.segment]

    @property
    def tribunal_name(self) -> str | None:
        """The tribunal's usual acronym, or ``None`` where none is certain.

        ``"TJSP"`` (8.26), ``"TJDFT"`` (8.07), ``"TRF3"`` (4.03), ``"TRT2"`` (5.02), ``"TRE-SP"``
        (6.26), ``"TJM-SP"`` (9.26), ``"CJM 1"`` (7.01: a military judicial district of the
        Union), ``"STF"``, ``"CNJ"``, ``"STJ"``, ``"TST"``, ``"TSE"``, ``"STM"`` (TR 00), ``"CJF"``
        (4.90) and ``"CSJT"`` (5.90). State military justice outside MG, RS and SP has no TJM:
        ``None``.
        """
        return _TRIBUNALS.get((self.segment, self.tribunal))

    def __str__(self) -> str:
        return self.formatted


def compute_check_digits(sequence: str, year: str, segment: str, tribunal: str, origin: str) -> str:
    """The two check digits of a number with these fields (ISO 7064 MOD 97-10).

    ``DD = 98 - (NNNNNNN AAAA J TR OOOO 00 mod 97)``, the fields read as one 20-digit integer.

    Raises:
        ValueError: a field is not made of its number of ASCII digits (7, 4, 1, 2 and 4).
    """
    values = (sequence, year, segment, tribunal, origin)
    for (name, size), value in zip(_FIELDS, values, strict=True):
        if len(value) != size or not (value.isascii() and value.isdigit()):
            msg = f"{name} must be {size} digit(s), got {value!r}"
            raise ValueError(msg)
    return f"{98 - int(''.join(values) + '00') % 97:02d}"


def parse_cnj(value: str | int) -> CnjNumber:
    """Check a lawsuit number and split it into its fields.

    Accepted: the formatted number (``0001234-56.2023.8.26.0100``) or its 20 digits, with
    whitespace around them; and an ``int`` of at most 20 digits, zero-padded on the left (a
    number typed into a spreadsheet as a number loses its leading zeros).

    Checked in order: something is there (``empty``); it is the formatted number or digits only
    (``characters``); 20 digits (``length``); the check digits (``check_digits``); a segment of 1
    to 9 (``segment``); a tribunal that exists in the segment (``tribunal``); a year from
    :data:`MIN_YEAR` to the current year in UTC, which is never behind Brazil's (``year``).

    Raises:
        InvalidCnjNumber: the number is not valid; its ``reason`` says which check failed.
    """
    digits = _valid_digits(value)
    return CnjNumber(
        digits[:7], digits[7:9], int(digits[9:13]), int(digits[13]), digits[14:16], digits[16:]
    )


def _valid_digits(value: object) -> str:
    """The 20 digits of a valid number (the checks of :func:`parse_cnj`)."""
    digits = _digits(value)
    check = digits[7:9]
    if int(digits[:7] + digits[9:] + check) % 97 != 1:
        expected = f"{98 - int(digits[:7] + digits[9:] + '00') % 97:02d}"
        detail = f"the check digits are {check}, expected {expected}"
        if isinstance(value, int) and len(str(value)) > _EXCEL_DIGITS:
            detail += (
                " (the cell is a number, and spreadsheets keep only 15 significant digits of a "
                "number: store the column as text)"
            )
        raise InvalidCnjNumber("check_digits", detail)
    segment = int(digits[13])
    if segment == 0:
        raise InvalidCnjNumber("segment", "segment 0 does not exist (J is 1 to 9)")
    if (segment, digits[14:16]) not in _TRIBUNALS:
        code = f"{segment}.{digits[14:16]}"
        detail = (
            f"{code} is no tribunal of segment {segment} ({_SEGMENTS[segment]}: "
            f"TR {_TRIBUNAL_RANGES[segment]})"
        )
        raise InvalidCnjNumber("tribunal", detail)
    year = int(digits[9:13])
    if year < MIN_YEAR or year > _latest_year():
        detail = f"the year {year} is not from {MIN_YEAR} to {_latest_year()}"
        raise InvalidCnjNumber("year", detail)
    return digits


class _Year:
    """The current year in UTC, read from the clock once a year rather than once a number."""

    year = 0
    until = 0.0


def _latest_year() -> int:
    now = time.time()
    if now >= _Year.until:
        year = time.gmtime(now).tm_year
        _Year.year, _Year.until = year, float(calendar.timegm((year + 1, 1, 1, 0, 0, 0)))
    return _Year.year


def _digits(value: object) -> str:
    """The 20 digits of ``value``, or why it has none."""
    if value is None:
        raise InvalidCnjNumber("empty", "no lawsuit number")
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise _not_text(value)
    if isinstance(value, int):
        if value < 0:
            raise InvalidCnjNumber("characters", f"a negative number ({value})")
        text = str(value)
        if len(text) > _LENGTH:
            raise InvalidCnjNumber("length", f"{len(text)} digits, expected 20")
        return text.zfill(_LENGTH)
    text = value.strip()
    if not text:
        raise InvalidCnjNumber("empty", "no lawsuit number")
    if text.isascii() and text.isdigit():
        if len(text) != _LENGTH:
            raise InvalidCnjNumber("length", f"{len(text)} digits, expected 20")
        return text
    formatted = _FORMATTED.fullmatch(text)
    if formatted is not None:
        return "".join(formatted.groups())
    stray = next((c for c in text if not ("0" <= c <= "9" or c in _SEPARATORS)), None)
    if stray is not None:
        raise InvalidCnjNumber("characters", f"unexpected character {stray!r}")
    count = sum(c.isdigit() for c in text)
    if count != _LENGTH:
        raise InvalidCnjNumber("length", f"{count} digits, expected 20")
    detail = "separators out of place (expected NNNNNNN-DD.AAAA.J.TR.OOOO or 20 digits)"
    raise InvalidCnjNumber("characters", detail)


def _not_text(value: object) -> InvalidCnjNumber:
    if isinstance(value, float):
        detail = (
            f"a decimal number ({value!r}); spreadsheets keep only 15 significant digits of a "
            "number: store the column as text"
        )
    else:
        detail = f"a {type(value).__name__} ({value!r}), not text"
    return InvalidCnjNumber("characters", detail)


class ValidarCnj(BaseBot[NoOptions]):
    """``cnj.validar``: checks the ``NUMERO_PROCESSO`` of each row, offline.

    A valid number is a success with the columns ``NUMERO_FORMATADO``, ``ANO``, ``SEGMENTO``,
    ``TRIBUNAL`` (the acronym, or ``J.TR`` where no name is certain) and ``ORIGEM``; an invalid
    one is a failed row whose ``MOTIVO_ERRO`` starts with the reason. So the errors sheet is
    exactly the rows to fix, and a run with any is ``completed_with_errors``.
    """

    retry: ClassVar[RetryPolicy] = RetryPolicy.never()
    required_columns: ClassVar[tuple[str, ...]] = (COLUMN,)

    def process(self, item: Item, ctx: RunContext[NoOptions]) -> ItemOutcome:
        """Check the row's number; raise :class:`InvalidCnjNumber` if it is not valid."""
        cell: Cell = item.get(COLUMN)
        d = _valid_digits(cell)
        segment = int(d[13])
        return ItemOutcome.success(
            {
                "NUMERO_FORMATADO": f"{d[:7]}-{d[7:9]}.{d[9:13]}.{d[13]}.{d[14:16]}.{d[16:]}",
                "ANO": int(d[9:13]),
                "SEGMENTO": _SEGMENTS[segment],
                "TRIBUNAL": _TRIBUNALS[segment, d[14:16]] or f"{segment}.{d[14:16]}",
                "ORIGEM": d[16:],
            }
        )
