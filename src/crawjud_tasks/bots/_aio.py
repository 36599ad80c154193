"""The run API for asyncio code: follow a run's events, read its state, cancel it.

``arun_events`` reads the event stream with redis-py's asyncio client (``XREAD BLOCK`` on the
event loop, no thread). ``arun_state`` and ``acancel_run`` are one short round trip each: they
run the sync functions in a thread (``asyncio.to_thread``), so that they share one
implementation with them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from crawjud_tasks._aio_redis import async_client_like
from crawjud_tasks._guards import is_instance
from crawjud_tasks._state import app_state
from crawjud_tasks.bots._events import (
    _ENTRY_ID,  # pyright: ignore[reportPrivateUsage]  (one rule for both readers)
    RunEvent,
    check_follow_seconds,
    decode_event,
    events_key,
    longest_block,
)
from crawjud_tasks.bots._runs import RunState, cancel_run, run_state
from crawjud_tasks.errors import DispatchError, ResultTimeoutError

if TYPE_CHECKING:
    from celery import Celery

__all__ = ["acancel_run", "arun_events", "arun_state"]

#: Entries read per round trip.
_BATCH = 500


async def arun_state(app: Celery, run_id: str) -> RunState | None:
    """:func:`~crawjud_tasks.bots.run_state` for asyncio code (same arguments and errors)."""
    return await asyncio.to_thread(run_state, app, run_id)


async def acancel_run(app: Celery, run_id: str, *, by: str | None = None) -> RunState | None:
    """:func:`~crawjud_tasks.bots.cancel_run` for asyncio code (same arguments and errors)."""
    return await asyncio.to_thread(cancel_run, app, run_id, by=by)


def arun_events(
    app: Celery,
    run_id: str,
    *,
    follow: bool = False,
    after: str | None = None,
    block: float = 1.0,
    timeout: float | None = None,
) -> AsyncIterator[RunEvent]:
    """:func:`~crawjud_tasks.bots.run_events` for asyncio code: ``async for event in ...``.

    Same arguments, order and errors; the reads wait on the event loop (redis-py's asyncio
    client), so a server streaming a run's events to many clients blocks none of them.

    Raises:
        DispatchError: an argument is invalid (raised at the call, before anything is read).
        ResultTimeoutError: following, no ``finished`` event within ``timeout``.
        BrokerUnavailableError: Redis did not answer.
        PayloadError: an entry of the stream is not a run event.
    """
    key = events_key(app, run_id)
    if after is not None and (not is_instance(after, str) or not _ENTRY_ID.fullmatch(after)):
        msg = f"after must be a stream entry id such as '1718000000000-0', got {after!r}"
        raise DispatchError(msg)
    check_follow_seconds("block", block, allow_none=False)
    check_follow_seconds("timeout", timeout, allow_none=True)
    return _read(
        app, key, run_id, follow=follow, after=after or "0-0", block=block, timeout=timeout
    )


async def _read(
    app: Celery,
    key: str,
    run_id: str,
    *,
    follow: bool,
    after: str,
    block: float,
    timeout: float | None,
) -> AsyncIterator[RunEvent]:
    state = app_state(app)
    sync_client = state.redis
    loop = asyncio.get_running_loop()
    deadline = None if timeout is None else loop.time() + timeout
    wait = min(block, longest_block(sync_client))
    last = after
    client = async_client_like(sync_client)
    try:
        while True:
            block_ms: int | None = None
            if follow:
                remaining = wait if deadline is None else min(wait, deadline - loop.time())
                if remaining <= 0:
                    msg = (
                        f"run {run_id!r} did not finish within {timeout} s of following (read up "
                        f"to entry {last}); it may still run: follow again with after={last!r}"
                    )
                    raise ResultTimeoutError(msg)
                block_ms = max(1, int(remaining * 1000))  # never 0 ms: BLOCK 0 waits for ever
            with state.redis_errors():
                raw: Any = await client.xread({key: last}, count=_BATCH, block=block_ms)
            entries: list[tuple[bytes, dict[bytes, bytes]]] = raw[0][1] if raw else []
            for entry_id, fields in entries:
                event = decode_event(run_id, entry_id, fields)
                last = event.id
                yield event
                if follow and event.kind == "finished":
                    return
            if not follow and len(entries) < _BATCH:
                return
    finally:
        await client.aclose()
