"""The task base class and the registration of every CrawJUD task on an app."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from celery import Task
from celery.result import AsyncResult
from kombu.exceptions import OperationalError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from crawjud_tasks._ping import ping_task_body
from crawjud_tasks._redact import redact_url
from crawjud_tasks.errors import BrokerUnavailableError

if TYPE_CHECKING:
    from celery import Celery

    from crawjud_tasks._settings import Settings

__all__ = ["CrawjudTask", "broker_unavailable", "register_tasks"]


def broker_unavailable(app: Celery, exc: BaseException) -> BrokerUnavailableError:
    """The error to raise when a publish to ``app``'s broker failed with ``exc``."""
    url = redact_url(str(app.conf.broker_url))
    return BrokerUnavailableError(
        f"the broker at {url} did not answer ({exc}); start it or check the broker URL"
    )


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
        try:
            return super().apply_async(args, kwargs, *more, **options)
        except OperationalError as exc:
            raise broker_unavailable(self.app, exc) from exc
        except RuntimeError as exc:
            # The Redis result backend gives up on an unreachable server with a bare
            # RuntimeError whose cause is the connection error.
            if isinstance(exc.__cause__, OSError | RedisConnectionError | RedisTimeoutError):
                raise broker_unavailable(self.app, exc.__cause__) from exc
            raise


def register_tasks(app: Celery, settings: Settings) -> None:
    """Register every CrawJUD task on ``app`` (never shared with other apps in the process)."""
    app.task(
        name=f"{settings.namespace}.ping",
        base=CrawjudTask,
        shared=False,
        bind=True,
    )(ping_task_body)
