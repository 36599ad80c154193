"""``<namespace>.ping``: proof that a worker consumes from a queue, end to end."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from typing import TYPE_CHECKING, Any

from crawjud_tasks._contracts import task_contract
from crawjud_tasks._metadata import version

if TYPE_CHECKING:
    from celery import Celery

__all__ = ["PingResult", "aping", "ping", "ping_worker", "register_ping"]


@dataclasses.dataclass(frozen=True, slots=True)
class PingResult:
    """What a worker answered to a ping."""

    #: The worker's node name (``celery@host``).
    hostname: str
    #: The crawjud-tasks version the worker runs.
    version: str
    #: When the worker ran the ping (UTC).
    time: dt.datetime


@task_contract("ping")
def ping_worker() -> PingResult:
    """Answer with the worker's node name, the library version and the time."""
    raise NotImplementedError


def register_ping(app: Celery) -> None:
    """Bind the ping contract's implementation on ``app``."""

    @ping_worker.implement_bound(app)
    def _ping(task: Any) -> PingResult:
        return PingResult(
            hostname=str(task.request.hostname),
            version=version(),
            time=dt.datetime.now(dt.timezone.utc),
        )


def ping(app: Celery, *, queue: str | None = None, timeout: float = 10.0) -> PingResult:
    """Send ``<namespace>.ping`` through ``queue`` (the default queue) and wait for the answer.

    Raises:
        BrokerUnavailableError: the broker did not answer.
        ResultTimeoutError: no worker answered within ``timeout`` seconds.
    """
    result = ping_worker.using(app).s().apply_async(queue=queue, expires=timeout)
    try:
        return result.get(timeout=timeout)
    finally:
        result.forget()


async def aping(app: Celery, *, queue: str | None = None, timeout: float = 10.0) -> PingResult:
    """:func:`ping` for asyncio code: the publish runs in a thread, the wait on the event loop.

    Raises:
        BrokerUnavailableError: the broker did not answer.
        ResultTimeoutError: no worker answered within ``timeout`` seconds.
    """
    signature = ping_worker.using(app).s()
    result = await asyncio.to_thread(signature.apply_async, queue=queue, expires=timeout)
    try:
        return await result.aget(timeout=timeout)
    finally:
        await asyncio.to_thread(result.forget)
