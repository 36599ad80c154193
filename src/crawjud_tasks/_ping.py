"""``<namespace>.ping``: proof that a worker consumes from a queue, end to end."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import TYPE_CHECKING, Any

import msgspec

from crawjud_tasks._metadata import version
from crawjud_tasks._state import app_settings

if TYPE_CHECKING:
    from celery import Celery

__all__ = ["PingResult", "ping", "ping_task_body"]


@dataclasses.dataclass(frozen=True, slots=True)
class PingResult:
    """What a worker answered to a ping."""

    #: The worker's node name (``celery@host``).
    hostname: str
    #: The crawjud-tasks version the worker runs.
    version: str
    #: When the worker ran the ping (UTC).
    time: dt.datetime


def ping_task_body(task: Any) -> dict[str, str]:
    """The task body: the worker's hostname, the library version and the time, as JSON data."""
    return {
        "hostname": str(task.request.hostname),
        "version": version(),
        "time": dt.datetime.now(dt.timezone.utc).isoformat(),
    }


def ping(app: Celery, *, queue: str | None = None, timeout: float = 10.0) -> PingResult:
    """Send ``<namespace>.ping`` through ``queue`` (the default queue) and wait for the answer.

    Raises:
        BrokerUnavailableError: the broker did not answer.
        celery.exceptions.TimeoutError: no worker answered within ``timeout`` seconds.
    """
    name = f"{app_settings(app).namespace}.ping"
    options: dict[str, Any] = {"expires": timeout}
    if queue is not None:
        options["queue"] = queue
    result = app.tasks[name].apply_async(**options)
    try:
        data = result.get(timeout=timeout)
    finally:
        result.forget()
    return msgspec.convert(data, PingResult, strict=False)
