"""The monitoring domain on an app: metric collection, the worker health record, beat's
heartbeat. Signal handlers are connected once per process and find each app's state."""

from __future__ import annotations

import os
import weakref
from typing import TYPE_CHECKING, Any

from celery import signals

from crawjud_tasks._tasks import OBSERVERS, CrawjudTask
from crawjud_tasks.monitoring import _report, _signals
from crawjud_tasks.monitoring import contracts as c
from crawjud_tasks.monitoring._collect import MetricsState, all_states, metrics_state
from crawjud_tasks.monitoring._store import ProcessInfo

if TYPE_CHECKING:
    from celery import Celery

    from crawjud_tasks._state import AppState

__all__ = ["register"]

_UID = "crawjud_tasks.monitoring."
_PRERUN = _UID + "on_prerun"
_POSTRUN = _UID + "on_postrun"
#: Counts the runs of CrawJUD tasks from their class hooks (see ``_count_runs``).
_COUNTER = _signals.RunCounter()
#: The worker's main process id, set at worker start (a pool process differs from it).
_main_pid: list[int] = []


def register(app: Celery, state: AppState) -> None:
    """Collect ``app``'s metrics in this process (unless ``monitoring.metrics_enabled`` is off),
    keep its workers' health records and beat's heartbeat, and implement ``periodic_report``."""
    if state.settings.monitoring.metrics_enabled:
        state.domain(MetricsState).app = weakref.ref(app)
        _connect_metrics()
    _connect_lifecycle()

    @c.periodic_report.implement(app)
    def _periodic_report(
        to: list[str] | None = None, period: float | None = None
    ) -> c.PeriodicReport:
        return _report.periodic_report(app, to=to, period=period)


def _connect_metrics() -> None:
    for signal, handler in (
        (signals.before_task_publish, _signals.on_before_publish),
        (signals.task_received, _signals.on_received),
        (signals.task_rejected, _signals.on_rejected),
        (signals.task_revoked, _signals.on_revoked),
    ):
        signal.connect(handler, weak=False, dispatch_uid=_UID + handler.__name__)
    if not OBSERVERS:  # the task class hooks count the runs: no signal to add to them
        _connect_runs()


def _connect_runs() -> None:
    signals.task_prerun.connect(_signals.on_prerun, weak=False, dispatch_uid=_PRERUN)
    signals.task_postrun.connect(_signals.on_postrun, weak=False, dispatch_uid=_POSTRUN)


def _count_runs() -> None:
    """Count task starts and ends through the library's task class hooks when every task of
    every app collecting metrics in this process is a CrawJUD task (Celery's own ``celery.*``
    aside): Celery's ``task_prerun``/``task_postrun`` then have no receiver and cost nothing.
    Any other task (a host's plain ``@app.task``) keeps the signals, which count every task."""
    apps = [app for metrics in all_states() if metrics.app and (app := metrics.app())]
    if apps and all(_library_only(app) for app in apps):
        if not OBSERVERS:
            OBSERVERS.append(_COUNTER)
        signals.task_prerun.disconnect(dispatch_uid=_PRERUN)
        signals.task_postrun.disconnect(dispatch_uid=_POSTRUN)
    elif apps:
        _connect_runs()
        OBSERVERS.clear()


def _library_only(app: Celery) -> bool:
    # An app not finalized yet may still get any task: the signals then (reading its tasks
    # here would finalize it). celery-types has no ``finalized``.
    finalized: bool = getattr(app, "finalized", False)
    return finalized and all(
        isinstance(task, CrawjudTask) or name.startswith("celery.")
        for name, task in app.tasks.items()
    )


def _connect_lifecycle() -> None:
    signals.worker_init.connect(_on_worker_init, weak=False, dispatch_uid=_UID + "worker_init")
    signals.worker_ready.connect(_on_worker_ready, weak=False, dispatch_uid=_UID + "ready")
    signals.worker_process_init.connect(_on_process_init, weak=False, dispatch_uid=_UID + "pinit")
    signals.worker_process_shutdown.connect(
        _on_process_shutdown, weak=False, dispatch_uid=_UID + "pshutdown"
    )
    signals.worker_shutdown.connect(_on_worker_shutdown, weak=False, dispatch_uid=_UID + "stop")
    signals.beat_init.connect(_on_beat_init, weak=False, dispatch_uid=_UID + "beat")


def _on_worker_init(sender: Any = None, **_: Any) -> None:
    _main_pid[:] = [os.getpid()]
    _count_runs()  # the tasks are all registered now; pool processes inherit the choice
    state = metrics_state(sender.app)
    if state is not None:
        state.process = ProcessInfo(str(sender.hostname), "main", sender.concurrency)
        state.start()


def _on_worker_ready(sender: Any = None, **_: Any) -> None:
    from crawjud_tasks.monitoring._health import start_health_writer  # noqa: PLC0415  (worker only)

    start_health_writer(sender)


def _on_process_init(sender: Any = None, **_: Any) -> None:
    if _main_pid and _main_pid[0] == os.getpid():
        return  # solo pool: the main process runs the tasks and flushes already
    for state in all_states():
        state.process = ProcessInfo(str(sender), "pool")
        state.start()


def _on_process_shutdown(**_: Any) -> None:
    for state in all_states():
        if state.process is not None and state.process.role == "pool":
            state.stop()


def _on_worker_shutdown(sender: Any = None, **_: Any) -> None:
    from crawjud_tasks.monitoring._health import stop_health_writer  # noqa: PLC0415

    stop_health_writer()
    for state in all_states():
        state.stop()
        # The process is a worker no more (a thread worker in a test, say): what it publishes
        # from now on is a publisher's, never a record of the stopped worker.
        state.process = None


def _on_beat_init(sender: Any = None, **_: Any) -> None:
    from crawjud_tasks.monitoring._health import start_beat_heartbeat  # noqa: PLC0415

    start_beat_heartbeat(sender.app)
