"""Outcomes that outlive a short Redis outage, on the worker.

A run that ends while Redis is away (a restart, a failover, a network blip) still has writes to
make before its message is acknowledged: the end-of-run mark of an at-least-once task
(:mod:`._at_least_once`) and its result. Both are retried, with backoff, within the *outcome
budget* (:func:`outcome_budget`): half the broker's visibility timeout. The run's lease heartbeat
last moved the message's unacknowledged entry at most a third of the lease's ttl (itself at most
half the timeout) before the outage, so a message whose outcome is still being written is not
redelivered meanwhile. Without a visibility timeout (a broker other than Redis): 60 s.

The host keeps failing fast: its result backend makes one attempt (``_app._celery_config``);
only the worker's backend retries, from worker start (:func:`store_patiently`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from crawjud_tasks._dispatch import visibility_timeout
from crawjud_tasks._redis import is_redis_url
from crawjud_tasks.errors import BrokerUnavailableError

if TYPE_CHECKING:
    from celery import Celery

__all__ = ["outcome_budget", "retry_write", "store_patiently"]

#: The outcome budget when the broker has no visibility timeout.
NO_VISIBILITY_BUDGET = 60.0
#: The longest pause between two attempts to store a result (milliseconds, Celery's unit).
_RESULT_PAUSE_MS = 1000
#: The first pause between two attempts, and the longest (seconds); each pause doubles.
_FIRST_PAUSE = 0.1
_LONGEST_PAUSE = 2.0


def outcome_budget(app: Celery) -> float:
    """Seconds a worker of ``app`` keeps retrying a run's outcome writes while Redis is away."""
    limit = visibility_timeout(app)
    return NO_VISIBILITY_BUDGET if limit is None else limit / 2


def retry_write(write: Callable[[], None], budget: float) -> BrokerUnavailableError | None:
    """Call ``write`` until it reaches Redis or ``budget`` seconds have passed.

    Returns:
        ``None`` once written; the last error if Redis did not answer within the budget.
    """
    deadline = time.monotonic() + budget
    pause = _FIRST_PAUSE
    while True:
        try:
            write()
        except BrokerUnavailableError as exc:
            left = deadline - time.monotonic()
            if left <= 0:
                return exc
            time.sleep(min(pause, left))
            pause = min(pause * 2, _LONGEST_PAUSE)
        else:
            return None


def store_patiently(app: Celery) -> None:
    """Make the worker's result backend retry a write that did not reach Redis, for about the
    outcome budget.

    Celery's own switch (``result_backend_always_retry``) retries a store on a connection
    error, up to ``result_backend_max_retries`` times, each after a random pause of up to
    ``result_backend_max_sleep_between_retries_ms`` (half of it on average). Set in this
    worker's configuration, for the backends its pool processes make, and on the backend this
    process made already, if any; the host's app is not touched and keeps failing fast.
    """
    conf: Any = app.conf
    if not is_redis_url(conf.result_backend):
        return
    average_pause = _RESULT_PAUSE_MS / 2000
    options = {
        "always_retry": True,
        "max_retries": math.ceil(outcome_budget(app) / average_pause),
        "base_sleep_between_retries_ms": _RESULT_PAUSE_MS,
        "max_sleep_between_retries_ms": _RESULT_PAUSE_MS,
    }
    for name, value in options.items():
        conf[f"result_backend_{name}"] = value
    backend: Any = getattr(app, "_backend", None)  # never build one here
    if backend is not None:
        for name, value in options.items():
            setattr(backend, name, value)
