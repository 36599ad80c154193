"""The awaitable API, typed like the sync one (checked, never run)."""

from __future__ import annotations

import typing_contracts as c
from typing_extensions import assert_type

from crawjud_tasks import PingResult, TypedResult, aping
from crawjud_tasks.bots import RunEvent, RunState, acancel_run, arun_events, arun_state


async def host() -> None:
    result = await c.add.adelay(1, b=2)
    assert_type(result, TypedResult[int])
    assert_type(await result.aget(timeout=5), int)
    checked = await c.check.adelay(c.Lawsuit(number="1", year=2024), strict=True)
    assert_type(await checked.aget(), c.Checked)
    assert_type(await aping(c.app, timeout=5), PingResult)
    assert_type(await arun_state(c.app, "run-1"), RunState | None)
    assert_type(await acancel_run(c.app, "run-1", by="Ana"), RunState | None)
    async for event in arun_events(c.app, "run-1", follow=True, timeout=60):
        assert_type(event, RunEvent)
