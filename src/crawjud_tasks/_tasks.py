"""The task base class of every CrawJUD task."""

from __future__ import annotations

from typing import Any

from celery import Task
from celery.result import AsyncResult

from crawjud_tasks._dispatch import translate_publish_errors

__all__ = ["CrawjudTask"]


class CrawjudTask(Task[Any, Any]):
    """Base of every CrawJUD task: JSON on the wire, broker errors as ``BrokerUnavailableError``."""

    serializer = "json"

    def apply_async(
        self,
        args: tuple[Any, ...] | None = None,
        kwargs: dict[str, Any] | None = None,
        *more: Any,
        **options: Any,
    ) -> AsyncResult[Any]:
        """Send the task, as Celery does; an unreachable broker raises BrokerUnavailableError."""
        with translate_publish_errors(self.app):
            return super().apply_async(args, kwargs, *more, **options)
