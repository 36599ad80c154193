"""``stats(app, window=...)``: rates, ratios and runtimes per task and queue, queues, workers."""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from typing import TYPE_CHECKING

from crawjud_tasks.errors import DispatchError
from crawjud_tasks.monitoring._series import RUNTIME_BUCKETS
from crawjud_tasks.monitoring._snapshot import SeriesTotals, read_snapshot

if TYPE_CHECKING:
    from celery import Celery

__all__ = ["QueueStats", "Stats", "TaskStats", "WorkerStats", "stats"]

_MAX_WINDOW = 86400.0


@dataclasses.dataclass(frozen=True, slots=True)
class TaskStats:
    """One task name on one queue over the window."""

    name: str
    queue: str
    #: Tasks finished (succeeded, failed or retried) per second.
    rate: float
    succeeded: int
    failed: int
    retried: int
    success_ratio: float | None
    failure_ratio: float | None
    mean_runtime: float | None
    #: The 95th percentile runtime, interpolated within its histogram bucket.
    p95_runtime: float | None
    active: int


@dataclasses.dataclass(frozen=True, slots=True)
class QueueStats:
    """One queue now."""

    name: str
    #: Messages waiting, every priority sub-list summed.
    depth: int
    #: Seconds the oldest waiting message has waited (None: empty or not stamped).
    oldest_age: float | None


@dataclasses.dataclass(frozen=True, slots=True)
class WorkerStats:
    """One worker (node) now, from its processes' last flushes."""

    node: str
    processes: int
    active: int
    concurrency: int | None
    rss: int
    cpu: float
    last_seen: float


@dataclasses.dataclass(frozen=True, slots=True)
class Stats:
    """Everything ``stats`` read."""

    window: float
    tasks: tuple[TaskStats, ...]
    queues: tuple[QueueStats, ...]
    workers: tuple[WorkerStats, ...]
    unacked: int | None
    poison: int
    metrics_dropped: int


def stats(app: Celery, *, window: float | dt.timedelta = 900.0) -> Stats:
    """Per task and queue figures over the last ``window`` (seconds or a timedelta), rounded up
    to whole minutes, and the queues and workers now.

    Raises:
        DispatchError: ``window`` is not between 1 second and 1 day.
        BrokerUnavailableError: Redis did not answer.
    """
    seconds = window.total_seconds() if isinstance(window, dt.timedelta) else float(window)
    if not 1 <= seconds <= _MAX_WINDOW:
        msg = f"window must be between 1 s and 1 day, got {window!r}"
        raise DispatchError(msg)
    minutes = math.ceil(seconds / 60)
    snap = read_snapshot(app, window_minutes=minutes)
    span = minutes * 60.0
    active: dict[tuple[str, str], int] = {}
    for record in snap.processes:
        for _, name, queue, *_ in record.get("active", []):
            active[name, queue] = active.get((name, queue), 0) + 1
    merged: dict[tuple[str, str], SeriesTotals] = {}
    for (name, queue, _), totals in snap.window.items():
        into = merged.setdefault((name, queue), SeriesTotals())
        for kind, value in totals.counts.items():
            into.counts[kind] = into.counts.get(kind, 0) + value
        into.rt = [a + b for a, b in zip(into.rt, totals.rt, strict=True)]
        into.rt_sum += totals.rt_sum
    for key in active:
        merged.setdefault(key, SeriesTotals())
    tasks = tuple(
        _task(name, queue, t, span, active.get((name, queue), 0))
        for (name, queue), t in sorted(merged.items())
    )
    queues = tuple(
        QueueStats(name, depth, max(snap.time - sent, 0.0) if sent is not None else None)
        for name, (depth, sent) in sorted(snap.queues.items())
    )
    return Stats(
        seconds, tasks, queues, _workers(snap.processes), snap.unacked, snap.poison, snap.dropped
    )


def _task(name: str, queue: str, totals: SeriesTotals, span: float, active: int) -> TaskStats:
    succeeded = totals.counts.get("succeeded", 0)
    failed = totals.counts.get("failed", 0)
    retried = totals.counts.get("retried", 0)
    done = succeeded + failed
    observed = sum(totals.rt)
    return TaskStats(
        name=name,
        queue=queue,
        rate=(done + retried) / span,
        succeeded=succeeded,
        failed=failed,
        retried=retried,
        success_ratio=succeeded / done if done else None,
        failure_ratio=failed / done if done else None,
        mean_runtime=totals.rt_sum / observed if observed else None,
        p95_runtime=percentile(totals.rt, 0.95),
        active=active,
    )


def percentile(buckets: list[int], quantile: float) -> float | None:
    """The ``quantile`` of a runtime histogram, interpolated linearly within its bucket."""
    total = sum(buckets)
    if not total:
        return None
    rank = quantile * total
    seen = 0
    lower = 0.0
    for index, count in enumerate(buckets):
        upper = RUNTIME_BUCKETS[index] if index < len(RUNTIME_BUCKETS) else RUNTIME_BUCKETS[-1]
        if count and seen + count >= rank:
            return lower + (upper - lower) * (rank - seen) / count
        seen += count
        lower = upper
    return lower


def _workers(processes: list[dict[str, object]]) -> tuple[WorkerStats, ...]:
    nodes: dict[str, list[dict[str, object]]] = {}
    for record in processes:
        nodes.setdefault(str(record["node"]), []).append(record)
    result: list[WorkerStats] = []
    for node, records in sorted(nodes.items()):
        main = next((r for r in records if r.get("role") == "main"), None)
        concurrency = main.get("concurrency") if main is not None else None
        runners = [r for r in records if r.get("role") != "main"] or records
        result.append(
            WorkerStats(
                node=node,
                processes=len(records),
                active=sum(int(str(r.get("active_count", 0))) for r in runners),
                concurrency=int(str(concurrency)) if concurrency is not None else None,
                rss=sum(int(str(r.get("rss", 0))) for r in records),
                cpu=sum(float(str(r.get("cpu", 0.0))) for r in records),
                last_seen=max(float(str(r.get("seen", 0.0))) for r in records),
            )
        )
    return tuple(result)
