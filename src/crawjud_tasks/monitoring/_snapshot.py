"""One read of everything monitoring shows: a pipelined round trip per Redis database.

The metric hashes live on the library's Redis (the result backend's database), the queues on the
broker's; when both are one database, the whole read is one round trip.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from crawjud_tasks._state import app_settings, app_state
from crawjud_tasks.monitoring._queues import add_queue_reads, parse_queue_reads
from crawjud_tasks.monitoring._series import (
    COUNTERS,
    QUEUE_WAIT_BUCKETS,
    RUNTIME_BUCKETS,
    split_field,
)

if TYPE_CHECKING:
    import redis
    from celery import Celery

__all__ = ["SeriesTotals", "Snapshot", "app_queues", "read_snapshot"]


@dataclasses.dataclass(slots=True)
class SeriesTotals:
    """Cumulative values of one (task name, queue, host)."""

    counts: dict[str, int] = dataclasses.field(default_factory=dict)
    failed: dict[str, int] = dataclasses.field(default_factory=dict)
    rt: list[int] = dataclasses.field(default_factory=lambda: [0] * (len(RUNTIME_BUCKETS) + 1))
    rt_sum: float = 0.0
    qw: list[int] = dataclasses.field(default_factory=lambda: [0] * (len(QUEUE_WAIT_BUCKETS) + 1))
    qw_sum: float = 0.0


@dataclasses.dataclass(frozen=True, slots=True)
class Snapshot:
    """What one read found."""

    time: float
    totals: dict[tuple[str, str, str], SeriesTotals]
    #: Per-minute deltas over the window asked for, summed.
    window: dict[tuple[str, str, str], SeriesTotals]
    #: Fresh process records (``worker_timeout``), parsed.
    processes: list[dict[str, Any]]
    #: ``{queue: (length, oldest publish time)}``; empty when the broker is not Redis.
    queues: dict[str, tuple[int, float | None]]
    unacked: int | None
    poison: int
    dropped: int


def app_queues(app: Celery) -> list[str]:
    """The queues of ``app``: the library's and the host's declared ones."""
    names = set(app_settings(app).queue_names.values())
    declared: Any = app.conf.task_queues or ()
    names.update(str(queue.name) for queue in declared)
    return sorted(names)


def read_snapshot(
    app: Celery, *, window_minutes: int = 0, queues: Sequence[str] | None = None
) -> Snapshot:
    """Read totals, ``window_minutes`` of rollups, processes and queues.

    Raises:
        BrokerUnavailableError: Redis did not answer.
    """
    state = app_state(app)
    settings = state.settings
    keys = state.keys
    queues = app_queues(app) if queues is None else list(queues)
    now = time.time()
    minutes = [keys.metrics_minute(int(now // 60) - offset) for offset in range(window_minutes)]
    with state.redis_errors():
        library = state.redis
        broker = state.link.broker
        shared = broker is not None and _same_database(library, broker)
        pipe: Any = library.pipeline(transaction=False)
        pipe.hgetall(keys.metrics_totals())
        pipe.hgetall(keys.metrics_processes())
        pipe.llen(keys.poison())
        for minute in minutes:
            pipe.hgetall(minute)
        broker_pipe: Any = pipe if shared or broker is None else broker.pipeline(transaction=False)
        if broker is not None:
            broker_pipe.hlen(keys.kombu_transport()["unacked_key"])
            add_queue_reads(broker_pipe, queues)
        replies = pipe.execute()
        broker_replies = (
            replies[3 + len(minutes) :] if broker_pipe is pipe else broker_pipe.execute()
        )
    totals, dropped = _parse_series([replies[0]])
    window, _ = _parse_series(replies[3 : 3 + len(minutes)])
    timeout = settings.monitoring.worker_timeout
    processes = [
        record
        for raw in replies[1].values()
        if now - (record := json.loads(raw)).get("seen", 0) <= timeout
    ]
    unacked: int | None = None
    queue_data: dict[str, tuple[int, float | None]] = {}
    if broker is not None:
        unacked = int(broker_replies[0])
        queue_data = parse_queue_reads(broker_replies[1:], queues)
    return Snapshot(now, totals, window, processes, queue_data, unacked, int(replies[2]), dropped)


def _same_database(one: redis.Redis, other: redis.Redis) -> bool:
    def where(client: redis.Redis) -> tuple[Any, ...]:
        kwargs: Any = client.connection_pool.connection_kwargs
        return (kwargs.get("host"), kwargs.get("port"), kwargs.get("path"), kwargs.get("db", 0))

    return where(one) == where(other)


def _parse_series(
    hashes: Sequence[dict[bytes, bytes]],
) -> tuple[dict[tuple[str, str, str], SeriesTotals], int]:
    series: dict[tuple[str, str, str], SeriesTotals] = {}
    dropped = 0
    counters = set(COUNTERS)
    for values in hashes:
        for raw_field, raw_value in values.items():
            parts = split_field(raw_field.decode())
            if parts is None:
                continue
            kind, name, queue, host, extra = parts
            if kind == "dropped":
                dropped += int(raw_value)
                continue
            key = (name, queue, host)
            totals = series.get(key)
            if totals is None:
                totals = series[key] = SeriesTotals()
            if kind == "failed" and extra:
                totals.failed[extra] = totals.failed.get(extra, 0) + int(raw_value)
            elif kind in counters:
                totals.counts[kind] = totals.counts.get(kind, 0) + int(raw_value)
            elif kind in ("rt", "qw"):
                buckets = totals.rt if kind == "rt" else totals.qw
                index = int(extra)
                if 0 <= index < len(buckets):
                    buckets[index] += int(raw_value)
            elif kind == "rt_sum":
                totals.rt_sum += float(raw_value)
            elif kind == "qw_sum":
                totals.qw_sum += float(raw_value)
    for totals in series.values():
        if totals.failed and "failed" not in totals.counts:
            totals.counts["failed"] = sum(totals.failed.values())
    return series, dropped
