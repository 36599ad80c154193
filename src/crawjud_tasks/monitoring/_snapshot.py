"""One read of everything monitoring shows: a pipelined round trip per Redis database.

The metric hashes live on the library's Redis (the result backend's database), the queues on the
broker's; when both are one database, the whole read is one round trip. A metric hash is read as
one string (a tiny script joins ``HGETALL``'s reply in Redis): thousands of fields arrive as one
reply instead of thousands, which is what keeps a scrape of hundreds of series fast.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

from crawjud_tasks._state import app_settings, app_state
from crawjud_tasks.monitoring._queues import add_queue_reads, parse_queue_reads
from crawjud_tasks.monitoring._series import (
    COUNTERS,
    FIELD_SEP,
    QUEUE_WAIT_BUCKETS,
    RUNTIME_BUCKETS,
)

if TYPE_CHECKING:
    import redis
    from celery import Celery

__all__ = ["SeriesTotals", "Snapshot", "app_queues", "read_snapshot"]

#: Separates fields and values in a joined hash (``\x1e``: in no name, no number).
_JOIN_SEP: Final = "\x1e"
_JOIN_HASH: Final = "return table.concat(redis.call('HGETALL', KEYS[1]), '\\30')"


@dataclasses.dataclass(slots=True)
class SeriesTotals:
    """Cumulative values of one (task name, queue, host)."""

    counts: dict[str, int] = dataclasses.field(default_factory=dict[str, int])
    failed: dict[str, int] = dataclasses.field(default_factory=dict[str, int])
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
    #: ``{bot: (items processed, items failed)}``, counted when runs end.
    bot_items: dict[str, tuple[int, int]] = dataclasses.field(
        default_factory=dict[str, tuple[int, int]]
    )


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
        pipe: Any = library.pipeline(transaction=False)  # pyright: ignore[reportUnknownMemberType]  (redis-py leaves shard_hint unannotated)
        pipe.eval(_JOIN_HASH, 1, keys.metrics_totals())
        pipe.hgetall(keys.metrics_processes())
        pipe.llen(keys.poison())
        for minute in minutes:
            pipe.eval(_JOIN_HASH, 1, minute)
        broker_pipe: Any = (
            pipe if shared or broker is None else broker.pipeline(transaction=False)  # pyright: ignore[reportUnknownMemberType]  (redis-py leaves shard_hint unannotated)
        )
        if broker is not None:
            broker_pipe.hlen(keys.kombu_transport()["unacked_key"])
            add_queue_reads(broker_pipe, queues)
        replies = pipe.execute()
        broker_replies = (
            replies[3 + len(minutes) :] if broker_pipe is pipe else broker_pipe.execute()
        )
    totals, dropped, bot_items = _parse_series([replies[0]])
    window, _, _ = _parse_series(replies[3 : 3 + len(minutes)])
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
    return Snapshot(
        now, totals, window, processes, queue_data, unacked, int(replies[2]), dropped, bot_items
    )


def _same_database(one: redis.Redis, other: redis.Redis) -> bool:
    def where(client: redis.Redis) -> tuple[Any, ...]:
        kwargs: Any = client.connection_pool.connection_kwargs
        return (kwargs.get("host"), kwargs.get("port"), kwargs.get("path"), kwargs.get("db", 0))

    return where(one) == where(other)


def _parse_series(  # noqa: PLR0912  (one loop over thousands of fields: no call per field)
    joined: Sequence[bytes],
) -> tuple[dict[tuple[str, str, str], SeriesTotals], int, dict[str, tuple[int, int]]]:
    """Series totals, dropped events and bot items from joined metric hashes."""
    series: dict[tuple[str, str, str], SeriesTotals] = {}
    dropped = 0
    items: dict[str, tuple[int, int]] = {}
    counters = frozenset(COUNTERS)
    for raw in joined:
        parts = raw.decode().split(_JOIN_SEP) if raw else []
        pairs = iter(parts)
        for raw_field, value in zip(pairs, pairs, strict=False):
            fields = raw_field.split(FIELD_SEP)
            if len(fields) != 5:
                continue  # a foreign field
            kind, name, queue, host, extra = fields
            if kind in _OTHER:
                if kind == "dropped":
                    dropped += int(value)
                else:
                    done, failed = items.get(name, (0, 0))
                    add = int(value)
                    items[name] = (done + add, failed) if kind == "items" else (done, failed + add)
                continue
            totals = series.get((name, queue, host))
            if totals is None:
                totals = series[name, queue, host] = SeriesTotals()
            if kind in counters:
                if kind == "failed" and extra:
                    totals.failed[extra] = totals.failed.get(extra, 0) + int(value)
                else:
                    totals.counts[kind] = totals.counts.get(kind, 0) + int(value)
            elif kind == "rt" or kind == "qw":  # noqa: PLR1714  (two string compares: faster)
                buckets = totals.rt if kind == "rt" else totals.qw
                index = int(extra)
                if 0 <= index < len(buckets):
                    buckets[index] += int(value)
            elif kind == "rt_sum":
                totals.rt_sum += float(value)
            elif kind == "qw_sum":
                totals.qw_sum += float(value)
    for totals in series.values():
        if totals.failed and "failed" not in totals.counts:
            totals.counts["failed"] = sum(totals.failed.values())
    return series, dropped, items


#: Field kinds that are not task series: dropped events, bot items (processed, failed).
_OTHER: Final = frozenset({"dropped", "items", "items_failed"})
