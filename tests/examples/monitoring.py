"""Contracts and a worker app for the monitoring tests (``--app tests.examples.monitoring:app``).

Importing the contracts is cheap; ``app`` is built on first access, from ``CRAWJUD_TASKS_*``.
"""

from __future__ import annotations

import os
import time
from typing import Any

from celery.exceptions import Reject

from crawjud_tasks import task_contract


@task_contract("mon.work")
def work(seconds: float) -> float:
    raise NotImplementedError


@task_contract("mon.fail")
def fail(kind: str) -> int:
    raise NotImplementedError


@task_contract("mon.flaky")
def flaky(key: str) -> str:
    raise NotImplementedError


@task_contract("mon.refuse")
def refuse() -> None:
    raise NotImplementedError


def _build() -> Any:
    import redis

    from crawjud_tasks import RetryPolicy, TransientError, create_app

    app = create_app()
    client = redis.Redis.from_url(os.environ["EXAMPLES_REDIS_URL"])

    @work.implement(app)
    def _work(seconds: float) -> float:
        time.sleep(seconds)
        return seconds

    @fail.implement(app)
    def _fail(kind: str) -> int:
        errors: dict[str, type[Exception]] = {"value": ValueError, "key": KeyError}
        raise errors.get(kind, RuntimeError)(kind)

    once = RetryPolicy(attempts=2, initial_wait=0.1, jitter=0.0)

    @flaky.implement(app, retry=once)
    def _flaky(key: str) -> str:
        if client.incr(f"flaky:{key}") == 1:
            raise TransientError("first attempt fails")
        return key

    @refuse.implement(app)
    def _refuse() -> None:
        raise Reject("refused", requeue=False)

    if os.environ.get("EXAMPLES_PLAIN_TASK"):
        # A host's own plain Celery task next to the contracts (the signals count every run).
        @app.task(name="mon.plain", shared=False)
        def _plain() -> int:  # pyright: ignore[reportUnusedFunction]  (registered by the decorator)
            return 1

    return app


def __getattr__(name: str) -> Any:
    if name == "app":
        globals()["app"] = built = _build()
        return built
    raise AttributeError(name)
