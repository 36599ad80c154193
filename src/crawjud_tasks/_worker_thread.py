"""The worker thread of the pytest plugin: it runs tasks registered after it started."""

from __future__ import annotations

from typing import Any

from celery.worker.consumer import Consumer
from vine import promise

__all__ = ["SETEX_WARNING_FILTER", "LateTasksConsumer"]

#: A ``filterwarnings`` entry: Celery 5.7's Redis result backend calls ``SETEX`` for every stored
#: result, which redis-py 8 marks deprecated.
SETEX_WARNING_FILTER = "ignore:Call to deprecated setex:DeprecationWarning"


class LateTasksConsumer(Consumer):
    """Celery's consumer, which learns the tasks registered on its app after it started.

    Celery builds a task's execution strategy once, when the worker starts; a message of a task
    registered later (a contract implemented in a test body, on a worker thread that shares the
    test's process) is rejected as unregistered. This consumer rebuilds the strategies when a
    message names a task it has none for but the app knows.
    """

    def create_task_handler(self, promise: Any = promise) -> Any:
        handler: Any = super().create_task_handler(promise)
        this: Any = self  # celery-types leaves the consumer's strategies out
        strategies: dict[str, Any] = this.strategies
        tasks: Any = self.app.tasks

        def on_task_received(message: Any) -> Any:
            headers: Any = getattr(message, "headers", None)
            name: Any = headers.get("task") if headers is not None else None
            if isinstance(name, str) and name not in strategies and name in tasks:
                self.update_strategies()
            return handler(message)

        return on_task_received
