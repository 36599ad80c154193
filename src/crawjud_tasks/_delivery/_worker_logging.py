"""Worker log records about refused messages, without the messages' payloads.

Celery's worker logs a message it refuses (a task no one registered, a body it will not decode,
such as pickle, a message that is not a task) with the message's body and headers, which hold
the task's arguments in the clear, and any secret among them. A filter on Celery's consumer
logger keeps the reason and, where the record names them, the task's name and id, and drops the
body, the headers and the traceback (the reason is in the line).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from celery.worker.consumer import consumer

from crawjud_tasks._delivery._consumer import describe_decode_error
from crawjud_tasks._guards import is_mapping

__all__ = ["MessagePayloadFilter", "hide_message_payloads"]

#: The logger Celery's consumer logs refused messages on.
CONSUMER_LOGGER = "celery.worker.consumer.consumer"
_NOT_LOGGED = "its body and headers are not logged, as they may hold secrets"


def _unknown_task(args: tuple[Any, ...]) -> tuple[str, tuple[Any, ...]]:
    # (error, body, headers, delivery info)
    headers: Any = args[2] if len(args) > 2 else None
    if is_mapping(headers):
        name, task_id = headers.get("task"), headers.get("id")
    else:  # protocol 1 keeps them in the body; the error names the task
        error = args[0] if args else None
        name = error.args[0] if isinstance(error, KeyError) and error.args else None
        task_id = None
    text = "Received unregistered task of type %r (id %s); the message was discarded"
    return f"{text} ({_NOT_LOGGED})", (name, task_id)


def _invalid_task(args: tuple[Any, ...]) -> tuple[str, tuple[Any, ...]]:
    # (error, body)
    text = "Received invalid task message: %s; the message was discarded"
    return f"{text} ({_NOT_LOGGED})", args[:1]


def _undecodable(args: tuple[Any, ...]) -> tuple[str, tuple[Any, ...]]:
    # (error, content type, content encoding, headers, body): the error's repr quotes the body
    error = args[0] if args and isinstance(args[0], BaseException) else None
    reason = describe_decode_error(error) if error is not None else "it cannot be decoded"
    text = "Can't decode message body: %s [type:%r encoding:%r]; the message was discarded"
    return f"{text} ({_NOT_LOGGED})", (reason, *args[1:3])


def _unknown_message(_: tuple[Any, ...]) -> tuple[str, tuple[Any, ...]]:
    # (report with the body and headers)
    text = "Received and deleted unknown message; wrong destination?"
    return f"{text} ({_NOT_LOGGED})", ()


_Rewrite = Callable[[tuple[Any, ...]], tuple[str, tuple[Any, ...]]]
#: Celery's formats of those records (celery-types leaves them out of its stubs).
_FORMATS: Mapping[str, Any] = vars(consumer)
_REWRITES: dict[str, _Rewrite] = {
    _FORMATS[name]: rewrite
    for name, rewrite in (
        ("UNKNOWN_TASK_ERROR", _unknown_task),
        ("INVALID_TASK_ERROR", _invalid_task),
        ("MESSAGE_DECODE_ERROR", _undecodable),
        ("UNKNOWN_FORMAT", _unknown_message),
    )
    if isinstance(_FORMATS.get(name), str)
}


class MessagePayloadFilter(logging.Filter):
    """Rewrite Celery's records about refused messages without the messages' payloads."""

    def filter(self, record: logging.LogRecord) -> bool:
        rewrite = _REWRITES.get(record.msg) if isinstance(record.msg, str) else None
        if rewrite is not None:
            args = record.args if isinstance(record.args, tuple) else ()
            record.msg, record.args = rewrite(args)
            record.exc_info = None
            record.exc_text = None
        return True


def hide_message_payloads() -> None:
    """Install :class:`MessagePayloadFilter` on Celery's consumer logger (once per process)."""
    logger = logging.getLogger(CONSUMER_LOGGER)
    if not any(isinstance(f, MessagePayloadFilter) for f in logger.filters):
        logger.addFilter(MessagePayloadFilter())
