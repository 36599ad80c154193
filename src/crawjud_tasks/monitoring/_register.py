"""The monitoring domain on an app: metric collection, the worker health record, beat's
heartbeat. Signal handlers are connected once per process and find each app's state."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from celery import signals

from crawjud_tasks.monitoring import _report, _signals
from crawjud_tasks.monitoring import contracts as c
from crawjud_tasks.monitoring._collect import MetricsState, all_states, metrics_state
from crawjud_tasks.monitoring._store import ProcessInfo

if TYPE_CHECKING:
    from celery import Celery

    from crawjud_tasks._state import AppState

__all__ = ["register"]

_UID = "crawjud_tasks.monitoring."
#: The worker's main process id, set at worker start (a pool process differs from it).
_main_pid: list[int] = []


def register(app: Celery, state: AppState) -> None:
    """Collect ``app``'s metrics in this process (unless ``monitoring.metrics_enabled`` is off),
    keep its workers' health records and beat's heartbeat, and implement ``periodic_report``."""
    if state.settings.monitoring.metrics_enabled:
        state.domain(MetricsState)
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
        (signals.task_prerun, _signals.on_prerun),
        (signals.task_postrun, _signals.on_postrun),
    ):
        signal.connect(handler, weak=False, dispatch_uid=_UID + handler.__name__)


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
