"""The one pipelined write of a metrics flush (keys from :class:`crawjud_tasks._keys.Keys`).

- ``metrics_totals`` (hash): cumulative counters and histogram buckets, one field per value
  (:func:`crawjud_tasks.monitoring._series.field`); written by every flush, read by scrapes.
- ``metrics_minute`` (hash, TTL ``rollup_retention``): the same deltas per minute of flush,
  behind ``stats(window=...)``.
- ``metrics_processes`` (hash): one JSON record per process (``<node>\\x1f<pid>``): active
  tasks, resources, last seen; records older than ``worker_timeout`` are ignored.
"""

from __future__ import annotations

import json
import os
import resource
import time
from typing import TYPE_CHECKING, Any, Final

from crawjud_tasks.monitoring._recorder import Drained
from crawjud_tasks.monitoring._series import COUNTERS, FIELD_SEP, field

if TYPE_CHECKING:
    import redis

    from crawjud_tasks._keys import Keys

__all__ = ["MAX_ACTIVE_SHOWN", "ProcessInfo", "write_flush"]

#: Active tasks a process record lists (the count is always exact).
MAX_ACTIVE_SHOWN: Final = 200
_PAGE_SIZE: Final = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


class ProcessInfo:
    """Who a process record belongs to."""

    __slots__ = ("concurrency", "node", "role")

    def __init__(self, node: str, role: str, concurrency: int | None = None) -> None:
        self.node = node
        self.role = role
        self.concurrency = concurrency


def process_field(node: str, pid: int) -> str:
    """The field of one process's record in ``monitoring:processes``."""
    return f"{node}{FIELD_SEP}{pid}"


def write_flush(  # noqa: PLR0912  (one pipeline of every kind of value)
    client: redis.Redis,
    keys: Keys,
    drained: Drained,
    *,
    host: str,
    process: ProcessInfo | None,
    retention: float,
    now: float | None = None,
) -> None:
    """Write one flush in one pipelined round trip (raises redis-py's errors)."""
    now = time.time() if now is None else now
    totals = keys.metrics_totals()
    minute = keys.metrics_minute(int(now // 60))
    pipe: Any = client.pipeline(transaction=False)  # pyright: ignore[reportUnknownMemberType]  (redis-py leaves shard_hint unannotated)
    for (name, queue), series in drained.series.items():
        for kind, value in zip(COUNTERS, series.counts, strict=True):
            if value:
                if kind != "failed":
                    pipe.hincrby(totals, field(kind, name, queue, host), value)
                pipe.hincrby(minute, field(kind, name, queue, host), value)
        for exception, value in series.failed.items():
            pipe.hincrby(totals, field("failed", name, queue, host, exception), value)
        for kind, buckets, total in (("rt", series.rt, series.rt_sum), ("qw", series.qw, None)):
            for index, value in enumerate(buckets):
                if value:
                    pipe.hincrby(totals, field(kind, name, queue, host, str(index)), value)
                    if total is not None:
                        pipe.hincrby(minute, field(kind, name, queue, host, str(index)), value)
        if series.rt_sum:
            pipe.hincrbyfloat(totals, field("rt_sum", name, queue, host), series.rt_sum)
            pipe.hincrbyfloat(minute, field("rt_sum", name, queue, host), series.rt_sum)
        if series.qw_sum:
            pipe.hincrbyfloat(totals, field("qw_sum", name, queue, host), series.qw_sum)
    if drained.series:
        pipe.expire(minute, int(retention) + 60)
    for bot, (processed, failed) in drained.bot_items.items():
        if processed:
            pipe.hincrby(totals, field("items", bot, "", host), processed)
        if failed:
            pipe.hincrby(totals, field("items_failed", bot, "", host), failed)
    if drained.dropped:
        pipe.hincrby(totals, field("dropped", "", "", host), drained.dropped)
    if process is not None:
        pipe.hset(
            keys.metrics_processes(),
            process_field(process.node, os.getpid()),
            _record(drained, process, now),
        )
    pipe.execute()


def _record(drained: Drained, process: ProcessInfo, now: float) -> str:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    active = sorted(drained.active.items(), key=lambda item: item[1][2])[:MAX_ACTIVE_SHOWN]
    record: dict[str, Any] = {
        "node": process.node,
        "pid": os.getpid(),
        "role": process.role,
        "seen": now,
        "concurrency": process.concurrency,
        "rss": _rss(),
        "cpu": usage.ru_utime + usage.ru_stime,
        "active_count": len(drained.active),
        "active": [
            [task_id, name, queue, started, sent]
            for task_id, (name, queue, started, sent, *_) in active
        ],
        "last_received": drained.last_received,
    }
    return json.dumps(record, separators=(",", ":"))


def _rss() -> int:
    """Resident memory of this process in bytes (peak RSS where /proc is missing)."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE_SIZE
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
