"""``task_status`` and ``active_tasks``: one task's state, and what runs now, cluster-wide.

Status comes from the result backend (what Celery stored) and the workers' process records
(what runs now, flushed every ``metrics_flush_interval``): no ``inspect`` broadcast, no record
written per task. An id that neither knows is ``unknown`` (Celery would say ``PENDING``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from typing import TYPE_CHECKING, Any

from crawjud_tasks._state import app_state
from crawjud_tasks.monitoring._snapshot import read_snapshot

if TYPE_CHECKING:
    from celery import Celery

    from crawjud_tasks._contracts import TaskRef

__all__ = ["ActiveTask", "TaskStatus", "active_tasks", "task_status"]

#: ``password=...``, ``token: ...``, URL credentials: redacted from tracebacks.
_SECRET = re.compile(
    r"(?i)((?:password|passwd|secret|token|api_key|apikey|authorization)\s*[=:]\s*)"
    r"(?:'[^']*'|\"[^\"]*\"|\S+)|(://[^:/@\s]+:)[^@\s]+@"
)


@dataclasses.dataclass(frozen=True, slots=True)
class ActiveTask:
    """A task running now (as of its worker process's last flush)."""

    id: str
    name: str
    queue: str
    worker: str
    pid: int
    started: dt.datetime
    #: When it was published (the ``crawjud_sent`` header), if known.
    sent: dt.datetime | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class TaskStatus:
    """What is known of one task."""

    id: str
    #: Celery's state (``PENDING``, ``STARTED``, ``SUCCESS``, ``FAILURE``, ``RETRY``...) or
    #: ``unknown`` for an id nothing has seen.
    state: str
    name: str | None = None
    worker: str | None = None
    queue: str | None = None
    sent: dt.datetime | None = None
    started: dt.datetime | None = None
    ended: dt.datetime | None = None
    runtime: float | None = None
    retries: int | None = None
    deliveries: int | None = None
    result: Any = None
    error_type: str | None = None
    error_message: str | None = None
    traceback: str | None = None


def active_tasks(app: Celery) -> list[ActiveTask]:
    """Every task that runs now on any worker of ``app`` (oldest first).

    Raises:
        BrokerUnavailableError: Redis did not answer.
    """
    snap = read_snapshot(app, queues=())
    tasks = [
        ActiveTask(
            id=str(task_id),
            name=str(name),
            queue=str(queue),
            worker=str(record["node"]),
            pid=int(record["pid"]),
            started=_time(started) or dt.datetime.now(dt.timezone.utc),
            sent=_time(sent),
        )
        for record in snap.processes
        for task_id, name, queue, started, sent, *_ in _entries(record)
    ]
    return sorted(tasks, key=lambda task: task.started)


def _entries(record: dict[str, Any]) -> list[list[Any]]:
    """A process record's active tasks, each ``[id, name, queue, started, sent]`` (records of
    earlier versions have no ``sent``)."""
    return [[*entry, None][:5] for entry in record.get("active", [])]


def task_status(
    app: Celery, task_id: str, *, contract: TaskRef[Any, Any] | None = None
) -> TaskStatus:
    """The status of task ``task_id``; the result is decoded with ``contract``'s types if given.

    Never raises for an unknown id: its state is ``unknown``.

    Raises:
        BrokerUnavailableError: Redis did not answer.
    """
    with app_state(app).redis_errors():
        meta: dict[str, Any] = dict(app.backend.get_task_meta(task_id))
    running = next((task for task in active_tasks(app) if task.id == task_id), None)
    state = str(meta.get("status") or "PENDING")
    if state == "PENDING" and running is None:
        return TaskStatus(id=task_id, state="unknown")
    if state == "PENDING" and running is not None:
        state = "STARTED"
    result = meta.get("result")
    error_type = error_message = None
    if isinstance(result, BaseException):
        error_type, error_message = type(result).__name__, redact(str(result))
        result = None
    elif isinstance(result, dict) and "exc_type" in result:
        failure: dict[str, Any] = result  # pyright: ignore[reportUnknownVariableType]  (a decoded JSON object)
        error_type, error_message = (
            str(failure["exc_type"]),
            redact(str(failure.get("exc_message"))),
        )
        result = None
    elif state == "SUCCESS" and contract is not None:
        result = contract.codec.decode_result(result)
    ended = meta.get("date_done")
    started = running.started if running is not None else None
    ended_at = _time(ended)
    name = meta.get("name") or (running.name if running else None)
    return TaskStatus(
        id=task_id,
        state=state,
        name=name,
        worker=meta.get("worker") or (running.worker if running else None),
        queue=meta.get("queue") or (running.queue if running else None),
        started=started,
        ended=ended_at,
        sent=running.sent if running is not None else None,
        deliveries=_deliveries(app, name, task_id, meta.get("retries")) if running else None,
        runtime=(ended_at - started).total_seconds() if ended_at and started else None,
        retries=meta.get("retries"),
        result=result,
        error_type=error_type,
        error_message=error_message,
        traceback=redact(meta["traceback"]) if meta.get("traceback") else None,
    )


def _deliveries(app: Celery, name: str | None, task_id: str, retries: Any) -> int | None:
    """How often the running task's message was delivered: at-least-once tasks count it."""
    if name is None:
        return None
    state = app_state(app)
    with state.redis_errors():
        raw: Any = state.redis.get(state.keys.deliveries(name, task_id, retries))
    try:
        count = int(raw) if raw is not None else None
    except ValueError:
        return None
    return count if count is not None and count > 0 else None


def redact(text: str) -> str:
    """``text`` with password-like values and URL credentials replaced by ``***``."""
    return _SECRET.sub(lambda m: f"{m.group(1)}***" if m.group(1) else f"{m.group(2)}***@", text)


def _time(value: object) -> dt.datetime | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
    if isinstance(value, int | float):
        return dt.datetime.fromtimestamp(value, dt.timezone.utc)
    parsed = dt.datetime.fromisoformat(str(value))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)
