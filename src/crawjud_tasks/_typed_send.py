"""Celery's own dispatch paths raise the library's errors too.

``app.send_task`` is the one door every send of a Celery app goes through: ``Task.delay`` and
``Task.apply_async`` of any task (the host's plain ``@app.task`` included), retries, groups,
chains and chords all end there. :func:`use_typed_send` wraps that door on one app (an attribute
of the app instance; the class and other apps are left alone), so that an unreachable broker or
result backend raises :class:`~crawjud_tasks.errors.BrokerUnavailableError`, and a full Redis
:class:`~crawjud_tasks.errors.RedisFullError`, instead of kombu's ``OperationalError`` or the
result backend's bare ``RuntimeError``.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from kombu.exceptions import ChannelError, OperationalError

from crawjud_tasks._dispatch import translate_publish_errors

if TYPE_CHECKING:
    from celery import Celery

__all__ = ["use_typed_send"]

#: Set on the wrapper, so that an app is wrapped once.
_MARK = "__crawjud_typed_send__"


def use_typed_send(app: Celery) -> None:
    """Make ``app.send_task`` (and so every dispatch of ``app``) raise the library's errors."""
    send_task = app.send_task
    if getattr(send_task, _MARK, False):
        return

    @functools.wraps(send_task)
    def typed_send_task(*args: Any, **kwargs: Any) -> Any:
        # A bare try on the hot path (free in CPython 3.11+); the translation runs on failure.
        try:
            return send_task(*args, **kwargs)
        except (OperationalError, ChannelError, RuntimeError):
            with translate_publish_errors(app):
                raise

    setattr(typed_send_task, _MARK, True)
    # An attribute of this app only: the Celery class and the host's other apps are untouched.
    vars(app)["send_task"] = typed_send_task
