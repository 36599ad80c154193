"""The awaitable API against a real worker: dispatch, results, ping and a bot run's events, with
the event loop free while they wait."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable
from typing import TypeVar

import pytest
from celery import Celery
from celery.worker import WorkController

from crawjud_tasks import ResultTimeoutError, TaskFailedError, aping, task_contract
from crawjud_tasks.bots import (
    BaseBot,
    Item,
    ItemOutcome,
    RunContext,
    acancel_run,
    arun_events,
    arun_state,
    register_bot,
)
from crawjud_tasks.bots.contracts import BotInput, BotParameters, execute_bot

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class Slept:
    seconds: float


@task_contract("asynctest.sleep")
def nap(seconds: float) -> Slept:
    raise NotImplementedError


@task_contract("asynctest.fail")
def fail(reason: str) -> int:
    raise NotImplementedError


class Upper(BaseBot[None]):
    required_columns = ("NOME",)

    def process(self, item: Item, ctx: RunContext[None]) -> ItemOutcome:
        return ItemOutcome.success({"UPPER": str(item["NOME"]).upper()})


def _implement(app: Celery) -> None:
    @nap.implement(app)
    def _nap(seconds: float) -> Slept:
        time.sleep(seconds)
        return Slept(seconds)

    @fail.implement(app)
    def _fail(reason: str) -> int:
        raise ValueError(reason)


async def _with_ticks(work: Awaitable[T]) -> tuple[T, int]:
    """``work``'s value, and how many times a 20 ms ticker ran on the loop meanwhile."""
    ticks = 0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not done.is_set():
            await asyncio.sleep(0.02)
            ticks += 1

    task = asyncio.create_task(ticker())
    try:
        return await work, ticks
    finally:
        done.set()
        await task


def test_adelay_and_aget_wait_on_the_loop(
    crawjud_app: Celery, crawjud_worker: WorkController
) -> None:
    _implement(crawjud_app)

    async def main() -> tuple[Slept, int]:
        result = await nap.using(crawjud_app).adelay(1.0)
        return await _with_ticks(result.aget(timeout=20))

    value, ticks = asyncio.run(main())
    assert value == Slept(1.0)
    # The loop ran the ticker all along the one-second wait: nothing blocked it.
    assert ticks >= 20


def test_aget_raises_the_errors_get_raises(
    crawjud_app: Celery, crawjud_worker: WorkController
) -> None:
    _implement(crawjud_app)

    async def main() -> None:
        failing = await fail.using(crawjud_app).adelay("no way")
        with pytest.raises(TaskFailedError, match="no way") as caught:
            await failing.aget(timeout=20)
        assert caught.value.remote_type == "ValueError"
        slow = await nap.using(crawjud_app).adelay(3.0)
        started = time.monotonic()
        with pytest.raises(ResultTimeoutError, match=r"within 0\.5 s"):
            await slow.aget(timeout=0.5)
        assert time.monotonic() - started < 2
        assert await slow.aget(timeout=20) == Slept(3.0)

    asyncio.run(main())


def test_aping_answers(crawjud_app: Celery, crawjud_worker: WorkController) -> None:
    answer = asyncio.run(aping(crawjud_app, timeout=20))
    assert answer.version


def test_a_bot_run_followed_with_arun_events(
    crawjud_app: Celery, crawjud_worker: WorkController
) -> None:
    register_bot(crawjud_app, "asynctest.upper", Upper)
    rows = [{"nome": "ana"}, {"nome": "bia"}]
    parameters = BotParameters(input=BotInput.inline(rows), run_id="async-run")

    async def main() -> list[str]:
        await execute_bot.using(crawjud_app).adelay("asynctest.upper", 1, parameters)
        kinds = [
            event.kind
            async for event in arun_events(crawjud_app, "async-run", follow=True, timeout=30)
        ]
        state = await arun_state(crawjud_app, "async-run")
        assert state is not None
        assert state.phase == "completed"
        assert state.counts.succeeded == 2
        # Cancelling a run that ended leaves it as it is; an unknown one is remembered.
        assert await acancel_run(crawjud_app, "async-run", by="Ana") == state
        assert await acancel_run(crawjud_app, "not-yet", by="Ana") is None
        later = await arun_state(crawjud_app, "not-yet")
        assert later is not None
        assert later.cancel_requested
        return kinds

    kinds = asyncio.run(main())
    assert kinds[0] == "started"
    assert kinds[-1] == "finished"
    assert kinds.count("item") == 2
