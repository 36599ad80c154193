"""A host app with scheduled contracts, implemented (``--app tests.examples.schedules_app:app``).

Beat and worker processes load it. Each run appends ``<task id> <label>`` to the Redis list
``SCHEDULES_LEDGER`` (on the broker's server), the ledger that tests count.
"""

from __future__ import annotations

import os
import time
from typing import Any

import redis

from crawjud_tasks import create_app, task_contract

LEDGER = "schedules:ledger"


@task_contract("sched.tick")
def tick(label: str) -> None:
    """Append this run to the ledger."""
    raise NotImplementedError


@task_contract("sched.slow")
def slow(label: str, seconds: float) -> None:
    """Append this run to the ledger, then take ``seconds``."""
    raise NotImplementedError


@task_contract("sched.flaky")
def flaky(label: str) -> None:
    """Append this run to the ledger, then fail."""
    raise NotImplementedError


def ledger(client: redis.Redis) -> list[tuple[str, str]]:
    """The ledger's entries as (task id, label)."""
    entries: Any = client.lrange(LEDGER, 0, -1)
    return [tuple(bytes(e).decode().split(" ", 1)) for e in entries]  # type: ignore[misc]


if os.environ.get("CRAWJUD_TASKS_BROKER_URL"):
    app = create_app()
    _ledger = redis.Redis.from_url(os.environ["CRAWJUD_TASKS_BROKER_URL"])

    @tick.implement_bound(app)
    def _tick(task: Any, label: str) -> None:
        _ledger.rpush(LEDGER, f"{task.request.id} {label}")

    @slow.implement_bound(app)
    def _slow(task: Any, label: str, seconds: float) -> None:
        _ledger.rpush(LEDGER, f"{task.request.id} {label}")
        time.sleep(seconds)

    @flaky.implement_bound(app)
    def _flaky(task: Any, label: str) -> None:
        _ledger.rpush(LEDGER, f"{task.request.id} {label}")
        raise RuntimeError(f"{label} failed on purpose")
