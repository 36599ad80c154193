"""Writing a poison record: a message the worker will not run again, and why.

Read back with :func:`crawjud_tasks.poison_messages`; the list keeps the newest
:data:`POISON_KEPT`. A record names the task and its id when the message had them, never the
message's body.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from crawjud_tasks._state import AppState

__all__ = ["POISON_KEPT", "record_poison"]

#: Poison records kept (the newest).
POISON_KEPT = 1000


def record_poison(state: AppState, task_id: str, task: str, deliveries: int, reason: str) -> None:
    """Push a poison record onto the app's list (one pipelined round trip).

    Raises:
        BrokerUnavailableError: Redis did not answer.
    """
    record = {
        "task_id": task_id,
        "task": task,
        "deliveries": deliveries,
        "reason": reason,
        "time": dt.datetime.now(dt.timezone.utc).isoformat(),
    }
    key = state.keys.poison()
    with state.redis_errors(), state.redis.pipeline(transaction=False) as pipe:  # pyright: ignore[reportUnknownMemberType]  (redis-py leaves shard_hint unannotated)
        pipe.lpush(key, json.dumps(record))
        pipe.ltrim(key, 0, POISON_KEPT - 1)
        pipe.execute()
