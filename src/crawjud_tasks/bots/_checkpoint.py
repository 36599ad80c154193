"""A run's checkpoint: one JSON line per item done, in Redis (kept by the run's
:class:`~crawjud_tasks.bots._store.RunStore`, one list per chunk of a parallel run).

A line holds the item's index, status, data and reason; its input cells are read again from the
run's input index. Items are done and recorded in input order, and a resumed delivery goes on
after the last recorded one, so a checkpoint is always the records of the first ``n`` items of
its chunk: its length says where to resume, and its lines rewrite the chunk's report part.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator
from typing import Any

import msgspec

from crawjud_tasks.bots._bot import ItemRecord, ItemStatus

__all__ = ["checkpoint_line", "saved_outcomes"]


@dataclasses.dataclass(frozen=True, slots=True)
class _Checkpoint:
    """An item's line in the checkpoint (its input is read again from the run's input)."""

    i: int
    s: ItemStatus
    d: dict[str, Any]
    e: str | None


_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder(_Checkpoint)


def checkpoint_line(record: ItemRecord) -> bytes:
    """The checkpoint line of an item done."""
    return _ENCODER.encode(
        _Checkpoint(record.index, record.status, dict(record.data), record.reason)
    )


def saved_outcomes(
    lines: Iterable[bytes],
) -> Iterator[tuple[ItemStatus, dict[str, Any], str | None]]:
    """The outcomes (status, data, reason) that checkpoint ``lines`` hold, in order."""
    decode = _DECODER.decode
    for line in lines:
        saved = decode(line)
        yield saved.s, saved.d, saved.e
