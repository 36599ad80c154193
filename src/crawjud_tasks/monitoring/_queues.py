"""Queue depth and the age of the oldest waiting message, read from kombu's Redis lists.

kombu keeps a queue with priorities as one list per priority step (``queue``,
``queue\\x06\\x163``, ``queue\\x06\\x166``, ``queue\\x06\\x169``), pushes on the left and pops on
the right: the oldest message of each list is its last element, whose ``crawjud_sent`` header
says when it was published.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

from crawjud_tasks.monitoring._signals import SENT_HEADER

if TYPE_CHECKING:
    import redis

__all__ = ["PRIORITY_STEPS", "add_queue_reads", "parse_queue_reads", "queue_lengths", "sublists"]

#: kombu's default ``priority_steps`` and separator of the Redis transport.
PRIORITY_STEPS: Final = (0, 3, 6, 9)
_SEP: Final = "\x06\x16"


def sublists(queue: str) -> list[str]:
    """The Redis lists that hold ``queue``'s messages."""
    return [queue if step == 0 else f"{queue}{_SEP}{step}" for step in PRIORITY_STEPS]


def add_queue_reads(pipe: Any, queues: Sequence[str]) -> None:
    """Queue ``LLEN`` and ``LINDEX -1`` of every sub-list of ``queues`` on ``pipe``."""
    for queue in queues:
        for key in sublists(queue):
            pipe.llen(key)
            pipe.lindex(key, -1)


def parse_queue_reads(
    replies: Sequence[Any], queues: Sequence[str]
) -> dict[str, tuple[int, float | None]]:
    """``{queue: (length, publish time of its oldest message or None)}`` from the replies."""
    result: dict[str, tuple[int, float | None]] = {}
    index = 0
    for queue in queues:
        length = 0
        oldest: float | None = None
        for _ in PRIORITY_STEPS:
            length += int(replies[index] or 0)
            sent = _sent_time(replies[index + 1])
            if sent is not None and (oldest is None or sent < oldest):
                oldest = sent
            index += 2
        result[queue] = (length, oldest)
    return result


def queue_lengths(
    client: redis.Redis, queues: Sequence[str]
) -> dict[str, tuple[int, float | None]]:
    """Read every queue's length and oldest message in one pipelined round trip."""
    pipe: Any = client.pipeline(transaction=False)  # pyright: ignore[reportUnknownMemberType]  (redis-py leaves shard_hint unannotated)
    add_queue_reads(pipe, queues)
    return parse_queue_reads(pipe.execute(), queues)


def _sent_time(raw: bytes | None) -> float | None:
    if not raw:
        return None
    try:
        message: Any = json.loads(raw)
        headers: Any = message.get("headers") or {}
        sent: Any = headers.get(SENT_HEADER)
        return float(sent) if sent is not None else None
    except (ValueError, TypeError, AttributeError):
        return None
