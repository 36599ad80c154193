"""Per-app metric collection: the process's recorder and the thread that flushes it.

A process counts in memory (:class:`Recorder`) and one daemon thread writes the deltas every
``metrics_flush_interval`` seconds in one pipelined round trip. A forked child (a prefork pool
process, a host's own workers) starts from zero with its own thread; the parent flushes what it
counted. When Redis does not answer, the deltas are kept (bounded by ``max_pending_series``),
what cannot be kept is counted as dropped, and one warning is logged per outage.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from typing import TYPE_CHECKING

import redis

from crawjud_tasks._state import app_state, has_state
from crawjud_tasks.errors import CrawjudTasksError
from crawjud_tasks.monitoring._recorder import Recorder
from crawjud_tasks.monitoring._series import GENERIC_HOST
from crawjud_tasks.monitoring._store import ProcessInfo, write_flush

if TYPE_CHECKING:
    from celery import Celery

    from crawjud_tasks._state import AppState

__all__ = ["MetricsState", "all_states", "metrics_state", "only_state"]

logger = logging.getLogger("crawjud_tasks.monitoring")

#: Every app's metric collection in this process, for the process-wide signal handlers.
#: Oldest first: a publish is counted by the newest app of its namespace (see ``_signals``).
_LIVE: list[weakref.ref[MetricsState]] = []
_LOCK = threading.Lock()


class MetricsState:
    """An app's metric collection in this process (``app_state(app).domain(MetricsState)``)."""

    def __init__(self, state: AppState) -> None:
        self.state = state
        self.settings = state.settings.monitoring
        self.keys = state.keys
        self.namespace_prefix = state.settings.key_prefix.replace(":", ".")
        #: The tasks whose result is a whole bot run's (``BotRunResult``): their items count.
        self.bot_run_tasks = frozenset(
            f"{state.settings.namespace}.{name}" for name in ("bots.execute_bot", "bots.finish_run")
        )
        self.recorder = self._new_recorder()
        #: This process's worker role (``main``, ``pool``, ``solo``), None in a publisher.
        self.process: ProcessInfo | None = None
        self.pid = os.getpid()
        #: The app (set by the domain's ``register``): the worker reads its tasks at start.
        self.app: weakref.ref[Celery] | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._flush_lock = threading.Lock()
        self.failing = False
        with _LOCK:
            _LIVE[:] = [ref for ref in _LIVE if ref() is not None]
            _LIVE.append(weakref.ref(self))

    def _new_recorder(self) -> Recorder:
        return Recorder(
            top_exceptions=self.settings.top_exceptions,
            max_series=self.settings.max_pending_series,
            hostname_labels=self.settings.hostname_labels,
        )

    @property
    def host(self) -> str:
        """The ``hostname`` label of this process's task metrics."""
        node = self.process.node if self.process is not None else None
        if not self.settings.hostname_labels or node is None:
            return GENERIC_HOST
        return node.partition("@")[2] or node

    def after_fork(self) -> None:
        """In a forked child: start from zero, without the parent's thread."""
        self.recorder = self._new_recorder()
        self.pid = os.getpid()
        self._thread = None
        self._stop = threading.Event()
        self._flush_lock = threading.Lock()
        self.failing = False

    def start(self) -> None:
        """Start this process's flush thread, unless it runs."""
        if self._thread is not None:
            return
        with _LOCK:
            if self._thread is None:
                thread = threading.Thread(
                    target=self._run, name="crawjud-metrics-flush", daemon=True
                )
                self._thread = thread
                thread.start()

    def stop(self) -> None:
        """Stop the flush thread and flush what is left."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=self.settings.metrics_flush_interval + 5)
        self._thread = None
        self.flush()

    def close(self) -> None:
        """The app was closed: stop flushing, and count this process as nothing of it."""
        self.stop()
        self.process = None
        with _LOCK:
            _LIVE[:] = [ref for ref in _LIVE if ref() not in (None, self)]

    def _run(self) -> None:
        stop = self._stop
        while not stop.wait(self.settings.metrics_flush_interval):
            self.flush()

    def flush(self) -> bool:
        """Write the deltas counted since the last flush; False if Redis did not take them."""
        with self._flush_lock:
            drained = self.recorder.drain()
            if not (drained.series or drained.bot_items or drained.dropped or self.process):
                return True
            try:
                write_flush(
                    self.state.redis,
                    self.keys,
                    drained,
                    host=self.host,
                    process=self.process,
                    retention=self.settings.rollup_retention,
                )
            except (redis.RedisError, OSError, CrawjudTasksError) as exc:
                self.recorder.restore(drained)
                if not self.failing:
                    self.failing = True
                    logger.warning(
                        "monitoring: metrics flush to Redis failed (%s: %s); keeping the "
                        "deltas and retrying every %s s",
                        type(exc).__name__,
                        exc,
                        self.settings.metrics_flush_interval,
                    )
                return False
            self.recorder.written(drained)
            if self.failing:
                self.failing = False
                logger.warning("monitoring: metrics flush to Redis works again")
            return True


def metrics_state(app: Celery) -> MetricsState | None:
    """``app``'s metric collection, None when metrics are off for it (or it is not ours)."""
    if not has_state(app):
        return None
    state = app_state(app)
    if not state.settings.monitoring.metrics_enabled:
        return None
    return state.domain(MetricsState)


def only_state() -> MetricsState | None:
    """The one app's metric collection when it is the only one in this process, None when
    there are several or none (no lock: the list changes only under it, each change atomic)."""
    live = _LIVE
    return live[0]() if len(live) == 1 else None


def all_states() -> list[MetricsState]:
    """Every app's metric collection in this process, oldest first."""
    with _LOCK:
        return [state for ref in _LIVE if (state := ref()) is not None]


def _after_fork_in_child() -> None:
    for state in all_states():
        state.after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)
