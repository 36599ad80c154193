"""Idempotency keys at dispatch: one execution per key, however often a task is dispatched.

On dispatch, ``<prefix>idempotency:<task>:<key>`` is set to the new task's id only if it is not
set yet (``SET NX``, one round trip): the first dispatch publishes, every later one within the
TTL gets the first task's id back and publishes nothing. The message carries the key in a header;
on the worker, a task whose key has a stored result (``...:<key>:result``) returns it without
running again, so a redelivered or duplicated message has no second effect. Both keys expire
after ``idempotency_ttl`` seconds (a setting; 24 hours by default). The worker side (replay of a
completed key) is :mod:`crawjud_tasks._delivery._replay`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from crawjud_tasks._state import app_state
from crawjud_tasks.errors import DispatchError

if TYPE_CHECKING:
    from celery import Celery

__all__ = ["HEADER", "check_key", "claim", "release"]

#: The message header that carries the key to the worker.
HEADER = "crawjud_idempotency_key"
_MAX_KEY = 200
#: Delete the key only while it names this task (another dispatch may have claimed it since).
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""
_MISSING = object()


def check_key(key: object) -> str:
    """``key`` if it is a usable idempotency key.

    Raises:
        DispatchError: it is not a non-empty string of at most 200 characters.
    """
    if not isinstance(key, str) or not key or len(key) > _MAX_KEY:
        msg = (
            f"idempotency_key must be a non-empty string of at most {_MAX_KEY} characters, "
            f"got {key!r}"
        )
        raise DispatchError(msg)
    return key


def claim(app: Celery, task: str, key: str, task_id: str) -> str | None:
    """Record ``task_id`` as the task of ``key``; return the earlier task's id if there is one."""
    state = app_state(app)
    name = state.keys.idempotency(task, key)
    ttl = state.settings.idempotency_ttl
    with state.redis_errors():
        if state.redis.set(name, task_id, nx=True, px=round(ttl * 1000)):
            return None
        existing: Any = state.redis.get(name)
    if existing is None:  # expired between the two commands: this dispatch takes the key
        return claim(app, task, key, task_id)
    return bytes(existing).decode()


def release(app: Celery, task: str, key: str, task_id: str) -> None:
    """Give the key back after a failed publish, if it still names ``task_id``."""
    state = app_state(app)
    with state.redis_errors():
        state.redis.eval(_RELEASE, 1, state.keys.idempotency(task, key), task_id)  # pyright: ignore[reportUnknownMemberType]  (redis-py leaves eval's result unannotated)
