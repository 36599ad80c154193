"""The two apps under test: raw Celery and crawjud-tasks, each with the same no-op task.

Both send JSON to the same Redis server. ``make_app`` builds either one in the calling process.
The worker subprocesses load theirs with ``-A apps:raw`` / ``--app apps:lib``: the attributes
``raw`` and ``lib`` of this module are built on first access from ``CJB_BROKER_URL`` and
``CJB_RESULT_BACKEND``, so a raw Celery worker never imports crawjud-tasks.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from celery import Celery

#: ``off`` builds the library app with monitoring metrics off, ``quiet`` with them on but the
#: flush and health threads firing once an hour, ``off-quiet`` off with the health thread firing
#: once an hour (benchmarks/monitoring.py).
METRICS_ENV = "BENCH_METRICS"

__all__ = [
    "KINDS",
    "LIB_QUEUE",
    "RAW_FOUR_QUEUES",
    "AppSpec",
    "make_app",
    "noop",
    "senders",
    "spec_for",
]

#: ``raw`` is plain Celery; ``lib`` is ``crawjud_tasks.create_app``.
KINDS = ("raw", "lib")
#: The queue the library routes its no-op tasks to (its default queue, ``<namespace>``).
LIB_QUEUE = "crawjud"
#: Four queues for raw Celery's worker, to match the library's four (``crawjud``,
#: ``crawjud.bots``, ``crawjud.mail``, ``crawjud.maintenance``). Raw Celery declares the three
#: it does not know itself when its worker is told to consume them
#: (``task_create_missing_queues``), as ``celery worker -Q celery,celery.a,...`` would.
RAW_FOUR_QUEUES = ("celery", "celery.a", "celery.b", "celery.c")

BROKER_ENV = "CJB_BROKER_URL"
BACKEND_ENV = "CJB_RESULT_BACKEND"


def noop() -> None:
    """The task body: does nothing."""


@dataclass(frozen=True)
class AppSpec:
    """What differs between the two apps, as far as the benchmarks care."""

    kind: str
    #: Task with its result stored in the result backend.
    stored: str
    #: Same body, ``ignore_result=True``.
    ignored: str
    #: The queue the no-op tasks are routed to, which is also the Redis list they wait in.
    queue_key: str
    #: The Redis hash of delivered-but-unacknowledged messages.
    unacked_key: str
    #: ``worker`` command line of this kind, up to (not including) the worker options.
    worker_command: tuple[str, ...]


def spec_for(kind: str) -> AppSpec:
    """The :class:`AppSpec` of ``kind`` (workers run on this interpreter)."""
    python = sys.executable
    if kind == "raw":
        return AppSpec(
            kind="raw",
            stored="raw.noop",
            ignored="raw.noop_ignored",
            queue_key="celery",
            unacked_key="unacked",
            worker_command=(python, "-m", "celery", "-A", "apps:raw", "worker"),
        )
    if kind == "lib":
        return AppSpec(
            kind="lib",
            stored="crawjud.noop",
            ignored="crawjud.noop_ignored",
            queue_key=LIB_QUEUE,
            unacked_key="crawjud:unacked",  # kombu's unacked_key, named by the library
            worker_command=(python, "-m", "crawjud_tasks", "--app", "apps:lib", "worker"),
        )
    msg = f"unknown kind {kind!r}; expected one of {KINDS}"
    raise ValueError(msg)


def make_app(
    kind: str,
    broker_url: str,
    result_backend: str,
    *,
    stored_body: Callable[[], Any] = noop,
    ignored_body: Callable[[], Any] = noop,
) -> Celery:
    """Build the ``kind`` app with its two no-op tasks (bodies replaceable for instrumentation)."""
    spec = spec_for(kind)
    if kind == "raw":
        app = Celery("raw", broker=broker_url, backend=result_backend, set_as_current=False)
        app.conf.update(task_serializer="json", result_serializer="json", accept_content=["json"])
        app.task(name=spec.stored, shared=False)(stored_body)
        app.task(name=spec.ignored, shared=False, ignore_result=True)(ignored_body)
        return app
    from crawjud_tasks import create_app  # noqa: PLC0415  (a raw worker never imports it)

    config: dict[str, Any] = {"broker_url": broker_url, "result_backend": result_backend}
    mode = os.environ.get(METRICS_ENV)  # benchmarks/monitoring.py: metrics on against off
    if mode == "off":
        config["monitoring"] = {"metrics_enabled": False}
    elif mode == "off-quiet":
        config["monitoring"] = {"metrics_enabled": False, "health_interval": 3600.0}
    elif mode == "quiet":
        config["monitoring"] = {"metrics_flush_interval": 3600.0, "health_interval": 3600.0}
    app = create_app(config)
    stored, ignored = _contracts()
    stored.implement(app)(stored_body)
    ignored.implement(app)(ignored_body)
    return app


def senders(kind: str, app: Celery) -> tuple[Callable[[], Any], Callable[[], Any]]:
    """How each kind sends its two tasks: ``apply_async`` for raw Celery, the contracts'
    ``delay`` for the library (stored, ignored). Each returns something with ``get(timeout=)``."""
    if kind == "raw":
        spec = spec_for(kind)
        return app.tasks[spec.stored].apply_async, app.tasks[spec.ignored].apply_async
    stored, ignored = _contracts()
    return stored.using(app).delay, ignored.using(app).delay


def _contracts() -> tuple[Any, Any]:
    """The library's two no-op contracts (declared on first use: raw workers never import it)."""
    from crawjud_tasks import task_contract  # noqa: PLC0415

    def noop_stored() -> int | None:
        """Stores its result (like raw Celery's task)."""
        raise NotImplementedError

    def noop_ignored() -> None:
        """Returns None: its result is never stored."""
        raise NotImplementedError

    return task_contract("noop")(noop_stored), task_contract("noop_ignored")(noop_ignored)


def __getattr__(name: str) -> Celery:
    """``apps.raw`` / ``apps.lib``: the app of a worker subprocess, from the environment."""
    if name in KINDS:
        app = make_app(name, os.environ[BROKER_ENV], os.environ[BACKEND_ENV])
        globals()[name] = app
        return app
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)
