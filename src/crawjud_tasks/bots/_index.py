"""A run's input, indexed once: its items written to the run's folder as JSON lines, with the
byte offset of every :data:`STEP`-th item, so that a chunk of a parallel run reads only its own
rows, and the input itself is read once per run.

``<run folder>/input/items.jsonl`` holds one line ``[row, [cells...]]`` per item (the cells in
column order, the index being the line's number); ``index.json`` holds the columns, the number
of items and the offsets. ``index.json`` is written last: its presence says the index is whole,
so a run delivered again reuses it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import msgspec

from crawjud_tasks.bots._bot import Item
from crawjud_tasks.bots._inputs import ItemSource
from crawjud_tasks.bots.contracts import Cell

__all__ = ["STEP", "InputIndex", "build_index", "index_items", "read_index"]

#: Items between two recorded offsets.
STEP = 1024
_ITEMS = "items.jsonl"
_INDEX = "index.json"


class InputIndex(msgspec.Struct, frozen=True):
    """What the index says of the input."""

    #: The input's columns, in input order.
    columns: list[str]
    #: Its items.
    total: int
    #: The byte offset in ``items.jsonl`` of the items ``0``, ``STEP``, ``2 * STEP``...
    offsets: list[int]


_ENCODER = msgspec.json.Encoder()
_LINE = msgspec.json.Decoder(tuple[int, list[Cell]])
_INDEX_DECODER = msgspec.json.Decoder(InputIndex)


def read_index(folder: Path) -> InputIndex | None:
    """The index in ``folder``, if it was written whole."""
    try:
        return _INDEX_DECODER.decode((folder / _INDEX).read_bytes())
    except (OSError, msgspec.DecodeError):
        return None


def build_index(folder: Path, source: ItemSource) -> InputIndex:
    """Write the index of ``source``'s items into ``folder`` (made if missing).

    Raises:
        BotParameterError: a row of the input is bad, or there are too many (as the items are
            read).
    """
    folder.mkdir(parents=True, exist_ok=True)
    temporary = folder / f".{_ITEMS}.tmp"
    offsets: list[int] = []
    total = position = 0
    encode = _ENCODER.encode
    with temporary.open("wb", buffering=1 << 20) as out:
        for item in source.items:
            if not total % STEP:
                offsets.append(position)
            line = encode((item.row, list(item.data.values())))
            out.write(line)
            out.write(b"\n")
            position += len(line) + 1
            total += 1
    os.replace(temporary, folder / _ITEMS)
    index = InputIndex(source.columns, total, offsets)
    (folder / f".{_INDEX}.tmp").write_bytes(_ENCODER.encode(index))
    os.replace(folder / f".{_INDEX}.tmp", folder / _INDEX)
    return index


def index_items(folder: Path, index: InputIndex, start: int, stop: int) -> Iterator[Item]:
    """The items ``start`` to ``stop`` (excluded), read from the index alone."""
    stop = min(stop, index.total)
    if start >= stop:
        return
    columns = index.columns
    decode = _LINE.decode
    with (folder / _ITEMS).open("rb", buffering=1 << 20) as file:
        file.seek(index.offsets[start // STEP])
        for _ in range(start % STEP):
            file.readline()
        for number in range(start, stop):
            row, cells = decode(file.readline())
            yield Item(number, row, dict(zip(columns, cells, strict=True)))
