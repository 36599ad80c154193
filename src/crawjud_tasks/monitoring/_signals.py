"""The Celery signal handlers that count task events, in every process that sees them.

Publishers count ``sent`` and stamp the message with its publish time (the header
``crawjud_sent``: queue wait and oldest-message age come from it); the worker's main process
counts ``received``, ``rejected`` and ``revoked``; the process that runs a task counts its
start, its end (succeeded, failed by exception class, retried, rejected) and its runtime.
Each handler costs a few dict operations: no I/O, no logging.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any, Final

from crawjud_tasks.monitoring._collect import MetricsState, all_states, metrics_state, only_state
from crawjud_tasks.monitoring._recorder import REJECTED, REVOKED, SENT

__all__ = [
    "SENT_HEADER",
    "RunCounter",
    "on_before_publish",
    "on_postrun",
    "on_prerun",
    "on_received",
    "on_rejected",
    "on_revoked",
]

#: The header that carries a message's publish time (seconds since the epoch).
SENT_HEADER: Final = "crawjud_sent"
_DEFAULT_QUEUE: Final = "celery"

#: The last (app, state) looked up: one identity test on the hot path.
_last: tuple[Any, MetricsState | None] = (None, None)


def _state(app: Any) -> MetricsState | None:
    global _last  # noqa: PLW0603  (a one-entry cache of the last app seen)
    cached_app, cached = _last
    if app is cached_app:
        return cached
    found = metrics_state(app)
    _last = (app, found)
    return found


def _queue(delivery_info: Any) -> str:
    if delivery_info:
        return delivery_info.get("routing_key") or _DEFAULT_QUEUE
    return _DEFAULT_QUEUE


def on_before_publish(
    sender: Any = None, headers: Any = None, routing_key: Any = None, **_: Any
) -> None:
    """Stamp the publish time and count ``sent`` (every publish of every app).

    The signal does not say which app publishes: the newest app whose namespace starts the task
    name counts it (an app made to replace a closed one takes over its counts).
    """
    if headers is None:
        return
    headers[SENT_HEADER] = time.time()
    name = str(sender)
    state = only_state()  # the common case: one app collects in this process
    if state is None:
        states = all_states()
        if not states:
            return
        state = states[-1]
        if len(states) > 1:
            state = next(
                (s for s in reversed(states) if name.startswith(s.namespace_prefix)), state
            )
    state.recorder.count(SENT, name, routing_key or _DEFAULT_QUEUE)
    state.start()


def on_received(sender: Any = None, request: Any = None, **_: Any) -> None:
    """The worker's main process took a task message off its queue."""
    app = sender.app
    cached_app, state = _last  # the per-task handlers test the cache inline: one call less
    if app is not cached_app:
        state = _state(app)
    if state is not None and request is not None:
        info = request.delivery_info
        state.recorder.received(request.name, (info and info.get("routing_key")) or _DEFAULT_QUEUE)


def on_rejected(sender: Any = None, message: Any = None, **_: Any) -> None:
    """The worker refused a message (unknown task, undecodable)."""
    state = _state(getattr(sender, "app", None))
    if state is not None and message is not None:
        headers: Any = message.headers or {}
        name = str(headers.get("task", "unknown"))
        state.recorder.count(REJECTED, name, _queue(message.delivery_info))


def on_revoked(sender: Any = None, request: Any = None, **_: Any) -> None:
    """A task was revoked (before it ran, or terminated)."""
    state = _state(getattr(sender, "app", None))
    if state is not None:
        # The sender is the task; ``request`` is its context (no ``name``), maybe None.
        info = getattr(request, "delivery_info", None)
        state.recorder.count(REVOKED, str(sender.name), _queue(info))


def on_prerun(sender: Any = None, task_id: Any = None, **_: Any) -> None:
    """A task starts in this process: count it and its wait in the queue."""
    app = sender.app
    cached_app, state = _last
    if app is not cached_app:
        state = _state(app)
    if state is None:
        return
    request = sender.request
    now = time.time()
    sent = due = getattr(request, SENT_HEADER, None)  # Context.get, without its frame
    if sent is not None:
        sent = due = float(sent)
        eta = request.eta
        if eta:
            # Deliberate delay (countdown, retry back-off) is not waiting in the queue.
            due = max(sent, dt.datetime.fromisoformat(eta).timestamp())
    info = request.delivery_info
    queue = (info and info.get("routing_key")) or _DEFAULT_QUEUE
    state.recorder.started(task_id, sender.name, queue, sent, due or now, now)


def on_postrun(
    sender: Any = None, task_id: Any = None, retval: Any = None, state: Any = None, **_: Any
) -> None:
    """A task ended in this process: count its outcome and runtime (and a bot run's items)."""
    app = sender.app
    cached_app, metrics = _last
    if app is not cached_app:
        metrics = _state(app)
    if metrics is None:
        return
    if state == "FAILURE":
        metrics.recorder.finished(task_id, state, type(retval).__name__)
        return
    metrics.recorder.finished(task_id, state, None)
    if retval.__class__ is dict and "counts" in retval and sender.name in metrics.bot_run_tasks:
        _count_bot_run(metrics, retval)


def _count_bot_run(metrics: MetricsState, result: dict[str, Any]) -> None:
    """Count the items of a bot run from its result (``BotRunResult``, JSON-encoded)."""
    counts: Any = result.get("counts")
    bot: Any = result.get("bot")
    if isinstance(bot, str) and hasattr(counts, "get"):
        try:
            done = sum(int(counts.get(key) or 0) for key in ("succeeded", "failed", "skipped"))
            failed = int(counts.get("failed") or 0)
        except (TypeError, ValueError):
            return  # not a run's counts: nothing to count
        metrics.recorder.bot_run(bot, done, failed)


class RunCounter:
    """The task class hooks' observer (:data:`crawjud_tasks._tasks.OBSERVERS`): counts a
    CrawJUD task's start and end as :func:`on_prerun` and :func:`on_postrun` do, one method call
    each instead of a signal dispatch (installed when the library's tasks are all there is)."""

    def started(self, task: Any, task_id: str) -> None:
        """A task starts in this process."""
        on_prerun(sender=task, task_id=task_id)

    def ended(self, task: Any, task_id: str, state: str, retval: Any) -> None:
        """A task ended in this process."""
        on_postrun(sender=task, task_id=task_id, retval=retval, state=state)
