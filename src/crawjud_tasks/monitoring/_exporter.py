"""The Prometheus exporter: one read of Redis per scrape, rendered by prometheus_client.

Names, labels and buckets are celery-exporter's, so that its dashboards and alerts work; the
``crawjud_*`` families add what only this library knows. Stateless: any number of exporters (or
the host's own web server, through :func:`metrics_wsgi_app` / :func:`metrics_asgi_app`) answer
the same. Needs the ``prometheus`` extra.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from crawjud_tasks.errors import BrokerUnavailableError, CrawjudTasksError
from crawjud_tasks.monitoring._series import COUNTERS, QUEUE_WAIT_BUCKETS, RUNTIME_BUCKETS
from crawjud_tasks.monitoring._snapshot import Snapshot, read_snapshot

if TYPE_CHECKING:
    from celery import Celery
    from prometheus_client.metrics_core import Metric

__all__ = ["metrics_asgi_app", "metrics_wsgi_app", "render_metrics", "serve_metrics"]

logger = logging.getLogger("crawjud_tasks.monitoring")
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_HELP = {
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
_LABELS = ["name", "hostname", "queue_name"]


def _prometheus() -> Any:
    try:
        import prometheus_client.core  # noqa: PLC0415  (the optional extra)
    except ImportError as exc:
        msg = "the Prometheus exporter needs the extra: pip install 'crawjud-tasks[prometheus]'"
        raise CrawjudTasksError(msg) from exc
    return prometheus_client.core


def render_metrics(app: Celery) -> bytes:
    """The exposition text of ``app``'s metrics (one read of Redis).

    Raises:
        BrokerUnavailableError: Redis did not answer.
        CrawjudTasksError: the ``prometheus`` extra is missing.
    """
    core = _prometheus()
    from prometheus_client import exposition  # noqa: PLC0415

    snapshot = read_snapshot(app)
    registry = core.CollectorRegistry(auto_describe=False)
    registry.register(_Collector(snapshot, core))
    return bytes(exposition.generate_latest(registry))


def _down() -> bytes:
    return b"# HELP crawjud_up Whether the exporter could read Redis.\n# TYPE crawjud_up gauge\ncrawjud_up 0.0\n"


class _Collector:
    def __init__(self, snapshot: Snapshot, core: Any) -> None:
        self.snapshot = snapshot
        self.core = core

    def collect(self) -> Iterator[Metric]:
        core = self.core
        snap = self.snapshot
        counters = {
            kind: core.CounterMetricFamily(
                f"celery_task_{kind}",
                _HELP[kind],
                labels=[*_LABELS, "exception"] if kind == "failed" else _LABELS,
            )
            for kind in COUNTERS
        }
        runtime = core.HistogramMetricFamily(
            "celery_task_runtime", "Histogram of task runtime measurements.", labels=_LABELS
        )
        wait = core.HistogramMetricFamily(
            "celery_task_queue_wait_time",
            "Histogram of the time tasks spend waiting in the queue before being executed, "
            "excluding deliberate ETA/countdown delay.",
            labels=_LABELS,
        )
        for (name, queue, host), totals in sorted(snap.totals.items()):
            labels = [name, host, queue]
            for kind in COUNTERS:
                if kind == "failed":
                    for exception, value in sorted(totals.failed.items()):
                        counters[kind].add_metric([*labels, exception], value)
                elif kind in totals.counts or kind != "sent":
                    counters[kind].add_metric(labels, totals.counts.get(kind, 0))
            if any(totals.rt):
                runtime.add_metric(labels, _buckets(totals.rt, RUNTIME_BUCKETS), totals.rt_sum)
            if any(totals.qw):
                wait.add_metric(labels, _buckets(totals.qw, QUEUE_WAIT_BUCKETS), totals.qw_sum)
        yield from counters.values()
        yield runtime
        yield wait
        yield from self._workers(core, snap)
        yield from self._queues(core, snap)

    def _workers(self, core: Any, snap: Snapshot) -> Iterable[Metric]:
        up = core.GaugeMetricFamily(
            "celery_worker_up",
            "Indicates if a worker has recently sent a heartbeat.",
            labels=["hostname"],
        )
        active = core.GaugeMetricFamily(
            "celery_worker_tasks_active",
            "The number of tasks the worker is currently processing",
            labels=["hostname"],
        )
        rss = core.GaugeMetricFamily(
            "crawjud_worker_rss_bytes",
            "Resident memory of a worker's processes.",
            labels=["hostname"],
        )
        cpu = core.CounterMetricFamily(
            "crawjud_worker_cpu_seconds",
            "CPU time of a worker's live processes.",
            labels=["hostname"],
        )
        nodes: dict[str, list[float]] = {}
        for record in snap.processes:
            values = nodes.setdefault(str(record["node"]), [0.0, 0.0, 0.0])
            if record.get("role") != "main" or record.get("concurrency") is None:
                values[0] += record.get("active_count", 0)
            values[1] += record.get("rss", 0)
            values[2] += record.get("cpu", 0.0)
        for node, (tasks, memory, seconds) in sorted(nodes.items()):
            up.add_metric([node], 1)
            active.add_metric([node], tasks)
            rss.add_metric([node], memory)
            cpu.add_metric([node], seconds)
        yield from (up, active, rss, cpu)

    def _queues(self, core: Any, snap: Snapshot) -> Iterable[Metric]:
        length = core.GaugeMetricFamily(
            "celery_queue_length", "The number of message in broker queue.", labels=["queue_name"]
        )
        oldest = core.GaugeMetricFamily(
            "crawjud_queue_oldest_message_age_seconds",
            "Age of the oldest message waiting in the queue (0 when empty).",
            labels=["queue_name"],
        )
        for queue, (count, sent) in sorted(snap.queues.items()):
            length.add_metric([queue], count)
            oldest.add_metric([queue], max(snap.time - sent, 0.0) if sent is not None else 0.0)
        yield length
        yield oldest
        if snap.unacked is not None:
            yield core.GaugeMetricFamily(
                "crawjud_unacked_messages",
                "Messages delivered to a worker and not acknowledged yet.",
                value=snap.unacked,
            )
        yield core.GaugeMetricFamily(
            "crawjud_poison_messages",
            "Poison messages recorded (kept, newest first).",
            value=snap.poison,
        )
        yield core.CounterMetricFamily(
            "crawjud_metrics_dropped",
            "Task events that workers could not keep while Redis was down.",
            value=snap.dropped,
        )
        yield core.GaugeMetricFamily(
            "crawjud_up", "Whether the exporter could read Redis.", value=1
        )


def _buckets(counts: list[int], bounds: tuple[float, ...]) -> list[tuple[str, float]]:
    cumulative = 0
    result: list[tuple[str, float]] = []
    for bound, count in zip((*(repr(b) for b in bounds), "+Inf"), counts, strict=True):
        cumulative += count
        result.append((bound, cumulative))
    return result


def _answer(app: Celery) -> tuple[str, bytes]:
    try:
        return "200 OK", render_metrics(app)
    except BrokerUnavailableError as exc:
        logger.warning("monitoring: scrape failed: %s", exc)
        return "503 Service Unavailable", _down()


WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], list[bytes]]


def metrics_wsgi_app(app: Celery) -> WSGIApp:
    """A WSGI app that answers every request with ``app``'s metrics (HTTP 503 if Redis is down)."""
    _prometheus()

    def wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        status, body = _answer(app)
        start_response(status, [("Content-Type", CONTENT_TYPE), ("Content-Length", str(len(body)))])
        return [body]

    return wsgi


def metrics_asgi_app(app: Celery) -> Callable[..., Any]:
    """An ASGI app that answers every HTTP request with ``app``'s metrics (Redis read in a thread)."""
    _prometheus()

    async def asgi(
        scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]
    ) -> None:
        if scope.get("type") != "http":
            return
        status, body = await asyncio.to_thread(_answer, app)
        await send(
            {
                "type": "http.response.start",
                "status": int(status.split()[0]),
                "headers": [(b"content-type", CONTENT_TYPE.encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})

    return asgi


def serve_metrics(app: Celery, *, host: str = "0.0.0.0", port: int = 9808) -> None:  # noqa: S104  (an exporter listens for Prometheus)
    """Serve ``app``'s metrics over HTTP until interrupted."""
    from socketserver import ThreadingMixIn  # noqa: PLC0415
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server  # noqa: PLC0415

    class _Server(ThreadingMixIn, WSGIServer):
        daemon_threads = True

    class _Quiet(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = make_server(host, port, metrics_wsgi_app(app), _Server, _Quiet)
    try:
        server.serve_forever()
    finally:
        server.server_close()
