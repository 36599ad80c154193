"""Idempotent replay: a message whose idempotency key already completed is not run again.

The key travels in a message header set at dispatch (:mod:`crawjud_tasks._idempotency` claims
it). On the worker, a key with a stored result returns that result without running; a run that
completes stores its JSON result under ``<prefix>idempotency:<task>:<key>:result`` for
``idempotency_ttl`` seconds, so a redelivered or duplicated message has no second effect.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from crawjud_tasks._idempotency import HEADER
from crawjud_tasks._state import app_state

if TYPE_CHECKING:
    from celery import Celery

    from crawjud_tasks._delivery._execution import Step

__all__ = ["Replay", "load_result", "store_result"]

_LOG = logging.getLogger("crawjud_tasks.worker")


class Replay:
    """The guarantee: a completed key's stored result is returned, a new one's result stored."""

    __slots__ = ()

    def wrap(self, proceed: Step) -> Step:
        def replay(task: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            key: str | None = getattr(task.request, HEADER, None)
            if key is None:
                return proceed(task, args, kwargs)
            app: Celery = task.app
            done, stored = load_result(app, task.name, key)
            if done:
                _LOG.info(
                    "%s[%s]: key %r already completed; not run again",
                    task.name,
                    task.request.id,
                    key,
                )
                return stored
            result = proceed(task, args, kwargs)
            store_result(app, task.name, key, result)
            return result

        return replay


def load_result(app: Celery, task: str, key: str) -> tuple[bool, Any]:
    """``(True, result)`` if a task with ``key`` completed (its JSON result), else
    ``(False, None)``."""
    state = app_state(app)
    with state.redis_errors():
        stored: Any = state.redis.get(state.keys.idempotency_result(task, key))
    if stored is None:
        return False, None
    return True, json.loads(stored)


def store_result(app: Celery, task: str, key: str, result: Any) -> None:
    """Record the JSON ``result`` of the task with ``key`` (it completed)."""
    state = app_state(app)
    ttl = round(state.settings.idempotency_ttl * 1000)
    with state.redis_errors():
        state.redis.set(state.keys.idempotency_result(task, key), json.dumps(result), px=ttl)
