"""A run's checkpoint: one JSON line per item done, in Redis (kept by the run's
:class:`~crawjud_tasks.bots._store.RunStore`), read back to resume and report.

A line holds the item's index, status, data and reason; its input cells are read again from the
run's input, so the checkpoint stays small.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import msgspec

from crawjud_tasks.bots._bot import Item, ItemRecord, ItemStatus
from crawjud_tasks.bots._store import RunStore
from crawjud_tasks.bots.contracts import RunCounts

if TYPE_CHECKING:
    from celery import Celery

__all__ = ["checkpoint_line", "load_checkpoint", "read_checkpoint"]


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


def load_checkpoint(
    app: Celery, run_id: str, items: Sequence[Item], counts: RunCounts
) -> tuple[list[ItemRecord], RunCounts]:
    """The records of the items done so far (each once), and ``counts`` with them added.

    Raises:
        BrokerUnavailableError: Redis did not answer.
    """
    return read_checkpoint(RunStore(app, run_id).checkpoint(), items, counts)


def read_checkpoint(
    lines: Sequence[bytes], items: Sequence[Item], counts: RunCounts
) -> tuple[list[ItemRecord], RunCounts]:
    """The records of the items done that ``lines`` hold (each once), and ``counts`` with them
    added."""
    done: set[int] = set()
    records: list[ItemRecord] = []
    succeeded, failed, skipped = counts.succeeded, counts.failed, counts.skipped
    for line in lines:
        saved = _DECODER.decode(line)
        if saved.i in done or saved.i >= len(items):
            continue
        done.add(saved.i)
        item = items[saved.i]
        records.append(ItemRecord(item.index, item.row, saved.s, item.data, saved.d, saved.e))
        if saved.s == "succeeded":
            succeeded += 1
        elif saved.s == "failed":
            failed += 1
        else:
            skipped += 1
    return records, dataclasses.replace(counts, succeeded=succeeded, failed=failed, skipped=skipped)
