"""Awaiting a stored result on the event loop: subscribe to the result's key, then read it.

Celery's Redis result backend writes a task's state to ``<prefix>celery-task-meta-<id>`` and
publishes the same record on a channel of that name. A wait subscribes first, then reads the
key (a result stored before the subscription is found there), then takes the published
records until one is final; every second without a message it reads the key again, so that a
record published while the connection was being re-made is not missed. No thread is used.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from celery import states

from crawjud_tasks._aio_redis import async_client_like
from crawjud_tasks._guards import is_dict

if TYPE_CHECKING:
    from celery.result import AsyncResult

__all__ = ["await_meta", "awaitable_on_the_loop"]

#: Seconds between two reads of the key while no record is published.
_RECHECK = 1.0


def awaitable_on_the_loop(raw: AsyncResult[Any]) -> bool:
    """Whether ``raw``'s backend is Celery's Redis backend, which :func:`await_meta` reads."""
    from celery.backends.redis import RedisBackend  # noqa: PLC0415  (the backend loads on use)

    return isinstance(raw.backend, RedisBackend)


async def await_meta(raw: AsyncResult[Any], timeout: float | None) -> dict[str, Any] | None:
    """The final record (``status``, ``result``...) of ``raw``'s task, as Celery decodes it
    (a failure's ``result`` is the rebuilt exception), or ``None`` after ``timeout`` seconds.

    Raises:
        redis.ConnectionError, redis.TimeoutError, OSError: the backend did not answer.
        ValueError, TypeError, KeyError: the stored record is not one a worker wrote.
    """
    backend: Any = raw.backend
    key = backend.get_key_for_task(raw.id)
    loop = asyncio.get_running_loop()
    deadline = None if timeout is None else loop.time() + timeout
    client = async_client_like(backend.client)
    try:
        async with client.pubsub() as pubsub:  # pyright: ignore[reportUnknownMemberType]  (redis-py leaves **kwargs unannotated)
            await pubsub.subscribe(key)
            meta = _final(backend, await client.get(key))
            while meta is None:
                remaining = _RECHECK if deadline is None else deadline - loop.time()
                if remaining <= 0:
                    return None
                wait = min(remaining, _RECHECK)
                reader: Any = pubsub.get_message  # redis-py types its reply as a bare dict
                message: Any = await reader(ignore_subscribe_messages=True, timeout=wait)
                if message is not None and message.get("type") == "message":
                    meta = _final(backend, message["data"])
                elif message is None:
                    meta = _final(backend, await client.get(key))
            return meta
    finally:
        await client.aclose()


def _final(backend: Any, payload: bytes | str | None) -> dict[str, Any] | None:
    """The decoded record if it is final (succeeded, failed, revoked), else ``None``."""
    if payload is None:
        return None
    meta: Any = backend.decode_result(payload)
    if not is_dict(meta) or "status" not in meta:
        kind = type(meta).__name__
        msg = f"a result record must be a mapping with a status, got {kind}"
        raise ValueError(msg)
    return meta if meta["status"] in states.READY_STATES else None  # pyright: ignore[reportUnknownVariableType]  (Celery's record is an untyped dict)
