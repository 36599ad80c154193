"""Monitoring: task status, cluster-wide metrics counted in the workers (never through Celery
events), stats, a Prometheus exporter and health probes. See ``docs/monitoring.md``."""

from __future__ import annotations

from crawjud_tasks.monitoring._exporter import (
    metrics_asgi_app,
    metrics_wsgi_app,
    render_metrics,
    serve_metrics,
)
from crawjud_tasks.monitoring._probe import HealthReport, beat_health, worker_health
from crawjud_tasks.monitoring._stats import QueueStats, Stats, TaskStats, WorkerStats, stats
from crawjud_tasks.monitoring._status import ActiveTask, TaskStatus, active_tasks, task_status

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
