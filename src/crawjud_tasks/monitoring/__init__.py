"""Monitoring: task status, cluster-wide metrics counted in the workers (never through Celery
events), stats, a Prometheus exporter and health probes. See ``docs/monitoring.md``.

Names load on first use: the container probe (:mod:`crawjud_tasks.monitoring.probes`) imports
this package without Celery or redis-py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from crawjud_tasks._lazy import lazy_names

if TYPE_CHECKING:
    from crawjud_tasks.monitoring._exporter import (
        metrics_asgi_app,
        metrics_wsgi_app,
        render_metrics,
        serve_metrics,
    )
    from crawjud_tasks.monitoring._stats import QueueStats, Stats, TaskStats, WorkerStats, stats
    from crawjud_tasks.monitoring._status import ActiveTask, TaskStatus, active_tasks, task_status
    from crawjud_tasks.monitoring.probes import HealthReport, beat_health, worker_health

__all__ = [
    "ActiveTask",
    "HealthReport",
    "QueueStats",
    "Stats",
    "TaskStats",
    "TaskStatus",
    "WorkerStats",
    "active_tasks",
    "beat_health",
    "metrics_asgi_app",
    "metrics_wsgi_app",
    "render_metrics",
    "serve_metrics",
    "stats",
    "task_status",
    "worker_health",
]

#: The module of each public name.
_WHERE = {
    "ActiveTask": "_status",
    "HealthReport": "probes",
    "QueueStats": "_stats",
    "Stats": "_stats",
    "TaskStats": "_stats",
    "TaskStatus": "_status",
    "WorkerStats": "_stats",
    "active_tasks": "_status",
    "beat_health": "probes",
    "metrics_asgi_app": "_exporter",
    "metrics_wsgi_app": "_exporter",
    "render_metrics": "_exporter",
    "serve_metrics": "_exporter",
    "stats": "_stats",
    "task_status": "_status",
    "worker_health": "probes",
}


__getattr__, __dir__ = lazy_names(__name__, _WHERE, globals())
