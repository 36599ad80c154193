"""The Prometheus text exposition (format 0.0.4) of one snapshot, written directly.

Names, labels and buckets are celery-exporter's, so that its dashboards and alerts work; the
``crawjud_*`` families add what only this library knows. A series appears once it has a value,
as with celery-exporter (a counter that never moved is not listed). Hundreds of task names times
a few queues render in a few milliseconds: each series' labels are escaped once and every line
is one string format.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Final

from crawjud_tasks.monitoring._series import COUNTERS, QUEUE_WAIT_BUCKETS, RUNTIME_BUCKETS

if TYPE_CHECKING:
    from crawjud_tasks.monitoring._snapshot import SeriesTotals, Snapshot

__all__ = ["CONTENT_TYPE", "down", "render"]

CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"
_COUNTER_HELP: Final = {
    "sent": "Sent when a task message is published.",
    "received": "Sent when the worker receives a task.",
    "started": "Sent just before the worker executes the task.",
    "succeeded": "Sent if the task executed successfully.",
    "failed": "Sent if the execution of the task failed.",
    "retried": "Sent if the task failed, but will be retried in the future.",
    "rejected": "The task was rejected by the worker, possibly to be re-queued or moved to a "
    "dead letter queue.",
    "revoked": "Sent if the task has been revoked.",
}
_RUNTIME_HELP: Final = "Histogram of task runtime measurements."
_WAIT_HELP: Final = (
    "Histogram of the time tasks spend waiting in the queue before being executed, "
    "excluding deliberate ETA/countdown delay."
)
_RUNTIME_LE: Final = (*(f'le="{bound!r}"' for bound in RUNTIME_BUCKETS), 'le="+Inf"')
_WAIT_LE: Final = (*(f'le="{bound!r}"' for bound in QUEUE_WAIT_BUCKETS), 'le="+Inf"')


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _head(out: list[str], name: str, kind: str, text: str) -> None:
    out.append(f"# HELP {name} {text}\n# TYPE {name} {kind}\n")


def _number(value: float) -> str:
    return repr(float(value)) if isinstance(value, float) else str(value)


def render(snap: Snapshot) -> bytes:
    """The exposition text of ``snap`` (``crawjud_up 1``)."""
    series = sorted(snap.totals.items())
    labels = [
        f'name="{_escape(name)}",hostname="{_escape(host)}",queue_name="{_escape(queue)}"'
        for (name, queue, host), _ in series
    ]
    out: list[str] = []
    for kind in COUNTERS:
        metric = f"celery_task_{kind}_total"
        _head(out, metric, "counter", _COUNTER_HELP[kind])
        if kind == "failed":
            out.extend(
                f'{metric}{{{label},exception="{_escape(exception)}"}} {value}\n'
                for label, (_, totals) in zip(labels, series, strict=True)
                for exception, value in sorted(totals.failed.items())
            )
        else:
            out.extend(
                f"{metric}{{{label}}} {value}\n"
                for label, (_, totals) in zip(labels, series, strict=True)
                if (value := totals.counts.get(kind))
            )
    _histograms(out, labels, series)
    _workers(out, snap)
    _queues(out, snap)
    _head(out, "crawjud_up", "gauge", "Whether the exporter could read Redis.")
    out.append("crawjud_up 1\n")
    return "".join(out).encode()


def _histogram_format(metric: str, bounds: tuple[str, ...]) -> str:
    """One ``str.format`` template for all the lines of one histogram series: ``{0}`` is the
    series' labels, ``{1}``... the cumulative bucket counts, then the count and the sum."""
    lines = [
        f"{metric}_bucket{{{{{{0}},{le}}}}} {{{index}}}\n" for index, le in enumerate(bounds, 1)
    ]
    size = len(bounds)
    lines.append(f"{metric}_count{{{{{{0}}}}}} {{{size}}}\n")
    lines.append(f"{metric}_sum{{{{{{0}}}}}} {{{size + 1}}}\n")
    return "".join(lines)


_RUNTIME_FORMAT: Final = _histogram_format("celery_task_runtime", _RUNTIME_LE)
_WAIT_FORMAT: Final = _histogram_format("celery_task_queue_wait_time", _WAIT_LE)


def _histograms(
    out: list[str], labels: list[str], series: list[tuple[tuple[str, str, str], SeriesTotals]]
) -> None:
    runtime = _RUNTIME_FORMAT.format
    wait = _WAIT_FORMAT.format
    accumulate = itertools.accumulate
    _head(out, "celery_task_runtime", "histogram", _RUNTIME_HELP)
    for label, (_, totals) in zip(labels, series, strict=True):
        if any(totals.rt):
            out.append(runtime(label, *accumulate(totals.rt), _number(totals.rt_sum)))
    _head(out, "celery_task_queue_wait_time", "histogram", _WAIT_HELP)
    for label, (_, totals) in zip(labels, series, strict=True):
        if any(totals.qw):
            out.append(wait(label, *accumulate(totals.qw), _number(totals.qw_sum)))


def _workers(out: list[str], snap: Snapshot) -> None:
    nodes: dict[str, list[float]] = {}
    for record in snap.processes:
        values = nodes.setdefault(str(record["node"]), [0, 0, 0.0])
        if record.get("role") != "main" or record.get("concurrency") is None:
            values[0] += record.get("active_count", 0)
        values[1] += record.get("rss", 0)
        values[2] += record.get("cpu", 0.0)
    rows = [(f'hostname="{_escape(node)}"', values) for node, values in sorted(nodes.items())]
    for metric, kind, text, index in (
        ("celery_worker_up", "gauge", "Indicates if a worker has recently sent a heartbeat.", -1),
        (
            "celery_worker_tasks_active",
            "gauge",
            "The number of tasks the worker is currently processing",
            0,
        ),
        ("crawjud_worker_rss_bytes", "gauge", "Resident memory of a worker's processes.", 1),
        (
            "crawjud_worker_cpu_seconds_total",
            "counter",
            "CPU time of a worker's live processes.",
            2,
        ),
    ):
        _head(out, metric, kind, text)
        out.extend(
            f"{metric}{{{label}}} {1 if index < 0 else _number(values[index])}\n"
            for label, values in rows
        )


def _queues(out: list[str], snap: Snapshot) -> None:
    queues = [(f'queue_name="{_escape(name)}"', data) for name, data in sorted(snap.queues.items())]
    _head(out, "celery_queue_length", "gauge", "The number of message in broker queue.")
    out.extend(f"celery_queue_length{{{label}}} {count}\n" for label, (count, _) in queues)
    metric = "crawjud_queue_oldest_message_age_seconds"
    _head(out, metric, "gauge", "Age of the oldest message waiting in the queue (0 when empty).")
    out.extend(
        f"{metric}{{{label}}} {max(snap.time - sent, 0.0) if sent is not None else 0.0!r}\n"
        for label, (_, sent) in queues
    )
    if snap.unacked is not None:
        text = "Messages delivered to a worker and not acknowledged yet."
        _head(out, "crawjud_unacked_messages", "gauge", text)
        out.append(f"crawjud_unacked_messages {snap.unacked}\n")
    _head(out, "crawjud_poison_messages", "gauge", "Poison messages recorded (kept, newest first).")
    out.append(f"crawjud_poison_messages {snap.poison}\n")
    bots = [(f'bot="{_escape(bot)}"', counts) for bot, counts in sorted(snap.bot_items.items())]
    for index, (metric, text) in enumerate(
        (
            ("crawjud_bot_items_processed_total", "Bot items with an outcome, counted at run end."),
            ("crawjud_bot_items_failed_total", "Bot items that failed, counted at run end."),
        )
    ):
        _head(out, metric, "counter", text)
        out.extend(f"{metric}{{{label}}} {counts[index]}\n" for label, counts in bots)
    text = "Task events that workers could not keep while Redis was down."
    _head(out, "crawjud_metrics_dropped_total", "counter", text)
    out.append(f"crawjud_metrics_dropped_total {snap.dropped}\n")


def down() -> bytes:
    """The exposition of a scrape that could not read Redis."""
    return (
        b"# HELP crawjud_up Whether the exporter could read Redis.\n"
        b"# TYPE crawjud_up gauge\ncrawjud_up 0\n"
    )
