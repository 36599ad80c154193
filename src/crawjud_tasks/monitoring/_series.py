"""The metric families of monitoring, their histogram buckets, and how a series is keyed.

Names, labels and buckets are celery-exporter's, so that existing dashboards work: counters per
task ``name`` and ``queue_name`` (and ``hostname``, ``generic`` unless hostname labels are on),
``celery_task_failed_total`` with the ``exception`` class, and two histograms. Each process keeps
its deltas in memory and adds them to Redis hashes whose fields are built here.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "COUNTERS",
    "FIELD_SEP",
    "GENERIC_HOST",
    "QUEUE_WAIT_BUCKETS",
    "RUNTIME_BUCKETS",
    "field",
]

#: Counter slots of a series, in order; ``celery_task_<name>_total`` each.
COUNTERS: Final = (
    "sent",
    "received",
    "started",
    "succeeded",
    "failed",
    "retried",
    "rejected",
    "revoked",
)
#: prometheus_client's default buckets, which celery-exporter uses for ``celery_task_runtime``.
RUNTIME_BUCKETS: Final = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
)
#: celery-exporter's ``DEFAULT_QUEUE_WAIT_BUCKETS`` for ``celery_task_queue_wait_time``.
QUEUE_WAIT_BUCKETS: Final = (
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
    600.0,
    1800.0,
)
#: The ``hostname`` label of task metrics when hostname labels are off (celery-exporter's).
GENERIC_HOST: Final = "generic"
#: Separates the parts of a hash field (never in a task name, queue name or host name).
FIELD_SEP: Final = "\x1f"


def field(kind: str, name: str, queue: str, host: str, extra: str = "") -> str:
    """The hash field of one value: ``kind`` (a counter, ``failed``, ``rt``, ``rt_sum``...)."""
    return FIELD_SEP.join((kind, name, queue, host, extra))
