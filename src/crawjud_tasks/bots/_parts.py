"""A run's report parts: each chunk of a run (a sequential run is one chunk) writes its items'
records, as they complete, to a file of its own in the run's folder; the finish writes the
report by reading the parts one after the other (they hold contiguous items, in input order).

``<run folder>/parts/<chunk>.jsonl`` (``run.jsonl`` for a sequential run) holds one line
``[index, row, status, [input cells...], data, reason]`` per item. A part is never trusted after
a crash: a chunk that resumes writes it again from its checkpoint in Redis (the records that
were handed to Redis are the ones that count), then appends to it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any, final

import msgspec

from crawjud_tasks.bots._bot import Item, ItemRecord, ItemStatus
from crawjud_tasks.bots.contracts import Cell, RunCounts

__all__ = ["PartWriter", "part_path", "read_parts"]

_Line = tuple[int, int, ItemStatus, list[Cell], dict[str, Cell], str | None]
_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder(_Line)


def part_path(folder: Path, chunk: int | None) -> Path:
    """The part of chunk ``chunk`` (``None``: a sequential run) in the run's folder ``folder``."""
    return folder / "parts" / ("run.jsonl" if chunk is None else f"{chunk}.jsonl")


@final
class PartWriter:
    """Appends records to a part, counting them and the columns the bot returned."""

    __slots__ = ("_file", "counts", "returned")

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[bytes] = path.open("wb", buffering=1 << 16)
        #: The records written, by status (``total`` is left at 0).
        self.counts: RunCounts = RunCounts()
        #: The columns the bot returned for successes, first seen first.
        self.returned: dict[str, None] = {}

    def write(self, record: ItemRecord) -> None:
        """Append ``record``."""
        counts = self.counts
        if record.status == "succeeded":
            self.counts = dataclasses.replace(counts, succeeded=counts.succeeded + 1)
            if record.data:
                self.returned.update(dict.fromkeys(record.data))
        elif record.status == "failed":
            self.counts = dataclasses.replace(counts, failed=counts.failed + 1)
        else:
            self.counts = dataclasses.replace(counts, skipped=counts.skipped + 1)
        line = (
            record.index,
            record.row,
            record.status,
            list(record.input.values()),
            dict(record.data),
            record.reason,
        )
        self._file.write(_ENCODER.encode(line))
        self._file.write(b"\n")

    def rewrite(
        self, saved: Iterable[tuple[ItemStatus, dict[str, Any], str | None]], items: Iterator[Item]
    ) -> None:
        """Write again the records of a resumed chunk: each checkpoint line's outcome with the
        next of ``items`` (its items in order)."""
        for (status, data, reason), item in zip(saved, items, strict=False):
            self.write(ItemRecord(item.index, item.row, status, item.data, data, reason))

    def close(self) -> None:
        """Flush and close the part."""
        self._file.close()


def read_parts(paths: Sequence[Path], columns: Sequence[str]) -> Iterator[ItemRecord]:
    """The records of ``paths``, one after the other (a missing part is skipped)."""
    decode = _DECODER.decode
    for path in paths:
        try:
            file = path.open("rb", buffering=1 << 20)
        except FileNotFoundError:
            continue
        with file:
            for line in file:
                index, row, status, cells, data, reason = decode(line)
                yield ItemRecord(
                    index, row, status, dict(zip(columns, cells, strict=False)), data, reason
                )
