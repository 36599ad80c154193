"""The worker side: the same contracts, implemented (``--app tests.examples.worker:app``).

Settings come from ``CRAWJUD_TASKS_*``; side effects are recorded in the Redis list
``EXAMPLES_LOG_KEY`` on the broker's server so that tests can count runs.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import time
from typing import Any

import redis

from crawjud_tasks import PermanentError, RetryPolicy, TransientError, create_app
from tests.examples import contracts as c

app = create_app()
_log = redis.Redis.from_url(os.environ["EXAMPLES_REDIS_URL"])
_LOG_KEY = os.environ.get("EXAMPLES_LOG_KEY", "examples:log")


def _note(entry: str) -> None:
    _log.rpush(_LOG_KEY, entry)


@c.add.implement(app)
def add(a: int, b: int = 0) -> int:
    return a + b


@c.check.implement(app)
def check(lawsuit: c.Lawsuit, *, strict: bool = False) -> c.Checked:
    assert isinstance(lawsuit, c.Lawsuit)  # rebuilt from JSON before the call
    valid = lawsuit.number.isdigit() and (not strict or len(lawsuit.number) == 20)
    return c.Checked(
        number=lawsuit.number,
        status=c.Status.VALID if valid else c.Status.INVALID,
        checked_at=dt.datetime(lawsuit.year, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc),
        notes=[] if valid else [f"not digits: {lawsuit.number}"],
    )


@c.prepare.implement(app)
def prepare(numbers: list[str], year: int) -> list[c.Lawsuit]:
    return [c.Lawsuit(number=n, year=year) for n in numbers]


@c.check_all.implement(app)
def check_all(lawsuits: list[c.Lawsuit]) -> list[c.Checked]:
    return [check(lawsuit) for lawsuit in lawsuits]


@c.summarize.implement(app)
def summarize(results: list[c.Checked]) -> c.Summary:
    _note("summarize")
    valid = sum(1 for result in results if result.status is c.Status.VALID)
    return {"total": len(results), "valid": valid}


@c.total.implement(app)
def total(values: list[int]) -> int:
    _note("total")
    return sum(values)


@c.fail.implement(app)
def fail(reason: str) -> int:
    raise ValueError(reason)


@c.record.implement(app)
def record(marker: str) -> None:
    _note(marker)


@c.when.implement(app)
def when(days: int | None) -> dt.datetime | None:
    if days is None:
        return None
    return dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(days=days)


#: Fractional waits without jitter, so that tests can compare them with what the worker did.
SCHEDULE = RetryPolicy(attempts=4, initial_wait=0.25, multiplier=1.5, max_wait=1.0, jitter=0.0)


@c.flaky.implement_bound(app, retry=SCHEDULE)
def flaky(task: Any, marker: str, failures: int) -> int:
    attempt = int(task.request.retries) + 1
    _note(f"{marker}:{attempt}:{time.time()}:{task.request.eta}")
    if attempt <= failures:
        raise TransientError(f"court site busy ({attempt})")
    return attempt


@c.refused.implement(app, retry=SCHEDULE)
def refused(marker: str) -> int:
    _note(marker)
    raise PermanentError("the court refused this filing")


@c.effect.implement(app)
def effect(marker: str, seconds: float = 0.0) -> str:
    _note(f"{marker}:start:{os.getpid()}")
    time.sleep(seconds)
    _note(f"{marker}:end")
    return marker


@c.crash.implement(app)
def crash(marker: str) -> str:
    _note(f"{marker}:{os.getpid()}")
    os.kill(os.getpid(), signal.SIGKILL)
    return marker


@c.settle.implement(app)
def settle(marker: str, seconds: float) -> str:
    _note(f"{marker}:start:{os.getpid()}")
    time.sleep(seconds)
    return marker


@c.pause.implement(app)
def pause(marker: str, seconds: float) -> str:
    _note(f"{marker}:start:{os.getpid()}")
    time.sleep(seconds)
    return marker
