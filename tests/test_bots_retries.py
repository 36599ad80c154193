"""Inline item retries: the bot's RetryPolicy through RetryPolicy.retrying(), a cancel-aware wait,
and the policy's timeout counted from the first attempt (which runs before the policy's
machinery does)."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import pytest
from celery import Celery

from crawjud_tasks import RetryPolicy, TransientError
from crawjud_tasks.bots import run_events
from crawjud_tasks.bots._loop import _Loop  # pyright: ignore[reportPrivateUsage]
from crawjud_tasks.bots._run import Run
from crawjud_tasks.bots.contracts import BotInput, BotParameters

pytestmark = pytest.mark.slow  # a real Redis server


def _loop(app: Celery, policy: RetryPolicy, run_id: str) -> tuple[_Loop, Run]:
    task = SimpleNamespace(request=SimpleNamespace(id=run_id))
    parameters = BotParameters(input=BotInput.inline([{"n": "1"}]), run_id=run_id)
    run = Run(app, task, "test.retries", 1, parameters)
    return _Loop(run, SimpleNamespace(retry=policy), None), run  # type: ignore[arg-type]  # the loop only reads the bot's policy here


def _warnings(app: Celery, run: Run) -> list[str]:
    run.store.close()
    return [e.message or "" for e in run_events(app, run.run_id) if e.level == "warning"]


def test_a_failing_call_is_retried_and_each_retry_is_in_the_runs_log(crawjud_app: Celery) -> None:
    policy = RetryPolicy(attempts=3, initial_wait=0.01, jitter=0.0)
    loop, run = _loop(crawjud_app, policy, "retries-1")
    calls: list[int] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise TransientError(f"busy {len(calls)}")
        return "done"

    assert loop.attempts("row 2", flaky, row=2) == "done"
    assert _warnings(crawjud_app, run) == [
        "row 2: attempt 1 of 3 failed (TransientError: busy 1); retrying in 0.0 s",
        "row 2: attempt 2 of 3 failed (TransientError: busy 2); retrying in 0.0 s",
    ]


def test_the_policys_timeout_counts_the_first_attempt(crawjud_app: Celery) -> None:
    policy = RetryPolicy(attempts=5, initial_wait=0.05, jitter=0.0, timeout=0.3)
    loop, run = _loop(crawjud_app, policy, "retries-2")
    calls: list[float] = []

    def slow_then_failing() -> None:
        calls.append(time.monotonic())
        if len(calls) == 1:
            time.sleep(0.3)
        raise TransientError("busy")

    with pytest.raises(TransientError):
        loop.attempts("row 2", slow_then_failing, row=2)
    assert len(calls) == 1  # 0.3 s gone: the next attempt would start past the timeout
    assert _warnings(crawjud_app, run) == []


def test_a_cancel_ends_the_wait_and_raises_the_last_failure(crawjud_app: Celery) -> None:
    policy = RetryPolicy(attempts=3, initial_wait=30.0, jitter=0.0)
    loop, run = _loop(crawjud_app, policy, "retries-3")

    def failing() -> None:
        raise TransientError("court site busy")

    threading.Timer(0.2, run.cancel.set).start()
    started = time.monotonic()
    with pytest.raises(TransientError, match="court site busy"):
        loop.attempts("setup", failing)
    assert time.monotonic() - started < 10
    assert len(_warnings(crawjud_app, run)) == 1
