"""The task base class of every CrawJUD task, and the hooks that tell an observer (monitoring)
when one starts and ends in this process."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from celery import Task
from celery.result import AsyncResult

from crawjud_tasks._dispatch import translate_publish_errors

__all__ = ["ENDED", "OBSERVERS", "CrawjudTask", "RunEnded", "RunObserver"]


class RunObserver(Protocol):
    """Told when a CrawJUD task starts and ends in this process (at most one is installed)."""

    def started(self, task: Task[Any, Any], task_id: str) -> None:
        """The task is about to run."""

    def ended(self, task: Task[Any, Any], task_id: str, state: str, retval: Any) -> None:
        """The task ended in Celery ``state`` (``retval``: its result, or its exception)."""


#: The observer of this process's runs, when one is installed (``monitoring``): the task class
#: hooks below tell it directly, one method call each, instead of Celery's signals.
OBSERVERS: list[RunObserver] = []

#: Told when a CrawJUD task ended (succeeded or failed, its result stored): the task (its
#: ``request`` carries the message's headers), the task id, Celery's state and the result or
#: exception.
RunEnded = Callable[[Task[Any, Any], str, str, Any], None]
#: The listeners of ended runs (``schedules`` records the runs its fires started), called by
#: the task class hook: no Celery signal, so a task that is no fire pays one loop step.
ENDED: list[RunEnded] = []


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

    # Celery's tracer calls these hooks only on classes that define them: the start before the
    # body, the end after the result is stored (SUCCESS, FAILURE) or the retry is sent. A
    # rejected or ignored run ends in the contract's runner (``ended`` from there).

    def before_start(self, task_id: str, args: Any, kwargs: Any) -> None:
        """Tell the observer that the task starts."""
        if OBSERVERS:
            OBSERVERS[0].started(self, task_id)

    def after_return(  # noqa: PLR0917  (Celery's signature)
        self, status: str, retval: Any, task_id: str, args: Any, kwargs: Any, einfo: Any
    ) -> None:
        """Tell the observer and the listeners that the task ended (succeeded or failed)."""
        if OBSERVERS:
            OBSERVERS[0].ended(self, task_id, status, retval)
        for listener in ENDED:
            listener(self, task_id, status, retval)

    def on_retry(self, exc: Exception, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        """Tell the observer that the task ended to be retried."""
        if OBSERVERS:
            OBSERVERS[0].ended(self, task_id, "RETRY", exc)
