"""The worker's consumer: Celery's, recording each message it refuses with the poison records.

Celery's consumer discards a message it cannot take (a body it cannot decode, a message that is
no task, a task no one registered, one it finds invalid) and logs it; here each is also recorded
(:func:`crawjud_tasks.poison_messages`: its task and id when it has them, and the reason, never
the body), so an operator finds every refused message in one place. ``create_app`` and
``install`` make this the app's ``worker_consumer`` unless the host named its own. It also keeps
consuming after the broker connection drops (:class:`~._reconnect.ReconnectingConsumer`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from crawjud_tasks._delivery._poison import record_poison
from crawjud_tasks._delivery._reconnect import ReconnectingConsumer
from crawjud_tasks._guards import is_mapping
from crawjud_tasks._state import app_state, has_state

__all__ = ["GuardedConsumer", "describe_decode_error"]

_LOG = logging.getLogger("crawjud_tasks.worker")


def describe_decode_error(exc: BaseException) -> str:
    """Why a body could not be decoded, without the body (a decode error's repr holds it)."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, UnicodeDecodeError):
            return f"it is not valid {cause.encoding} (byte {cause.start}: {cause.reason})"
        cause = cause.__cause__ or cause.__context__
    return f"its body cannot be decoded ({type(exc).__name__})"


class GuardedConsumer(ReconnectingConsumer):
    """Celery's consumer, kept consuming after a broker blip (:mod:`._reconnect`); every message
    it refuses is also recorded."""

    def on_decode_error(self, message: Any, exc: Exception) -> None:
        super().on_decode_error(message, exc)
        self._record(message, describe_decode_error(exc))

    def on_unknown_message(self, body: Any, message: Any) -> None:
        super().on_unknown_message(body, message)
        self._record(message, "it is no task message")

    def on_unknown_task(self, body: Any, message: Any, exc: Exception) -> None:
        super().on_unknown_task(body, message, exc)
        self._record(message, "no task of that name is registered on this worker")

    def on_invalid_task(self, body: Any, message: Any, exc: Exception) -> None:
        super().on_invalid_task(body, message, exc)
        self._record(message, f"Celery refused it: {str(exc).splitlines()[0][:200]}")

    def _record(self, message: Any, reason: str) -> None:
        if not has_state(self.app):
            return
        raw: Any = getattr(message, "headers", None)
        headers: Mapping[str, Any] = raw if is_mapping(raw) else {}
        task, task_id = headers.get("task"), headers.get("id")
        try:
            record_poison(
                app_state(self.app),
                task_id if isinstance(task_id, str) else "?",
                task if isinstance(task, str) else "?",
                1,
                f"refused on arrival: {reason}",
            )
        except Exception as exc:  # never let the record stop the worker
            _LOG.warning("the refused message was not recorded: %s", exc)
