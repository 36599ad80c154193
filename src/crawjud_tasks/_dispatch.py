"""Sending: checked send options, and broker errors translated where they enter the library."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Generator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from kombu.exceptions import OperationalError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from crawjud_tasks._broker_hint import broker_unanswered
from crawjud_tasks._redis import is_redis_url
from crawjud_tasks.errors import BrokerUnavailableError, DispatchError, VisibilityTimeoutError

if TYPE_CHECKING:
    from celery import Celery

__all__ = [
    "broker_unavailable",
    "check_seconds",
    "send_options",
    "translate_publish_errors",
    "visibility_timeout",
]

#: kombu's Redis transport redelivers after this many seconds unless told otherwise.
_KOMBU_VISIBILITY_TIMEOUT = 3600.0


def broker_unavailable(app: Celery, exc: BaseException) -> BrokerUnavailableError:
    """The error to raise when a publish to ``app``'s broker failed with ``exc``."""
    return BrokerUnavailableError(broker_unanswered(app, exc))


@contextmanager
def translate_publish_errors(app: Celery) -> Generator[None, None, None]:
    """Turn the errors of an unreachable broker or result backend into BrokerUnavailableError."""
    try:
        yield
    except OperationalError as exc:
        raise broker_unavailable(app, exc) from exc
    except RuntimeError as exc:
        # The Redis result backend gives up on an unreachable server with a bare RuntimeError
        # whose cause is the connection error.
        if isinstance(exc.__cause__, OSError | RedisConnectionError | RedisTimeoutError):
            raise broker_unavailable(app, exc.__cause__) from exc
        raise


def send_options(
    app: Celery,
    *,
    countdown: float | None,
    eta: dt.datetime | None,
    expires: float | dt.datetime | None,
    queue: str | None,
    priority: int | None,
    task_id: str | None,
    time_limit: float | None,
    soft_time_limit: float | None,
) -> dict[str, Any]:
    """Check the options of one dispatch and return them as Celery's keyword arguments.

    Raises:
        DispatchError: an option has the wrong type or an impossible value.
        VisibilityTimeoutError: the countdown or ETA reaches the broker's visibility timeout.
    """
    given: dict[str, Any] = {
        "countdown": countdown,
        "eta": eta,
        "expires": expires,
        "queue": queue,
        "priority": priority,
        "task_id": task_id,
        "time_limit": time_limit,
        "soft_time_limit": soft_time_limit,
    }
    options = {name: value for name, value in given.items() if value is not None}
    for name, value in options.items():
        _CHECKS[name](name, value)
    if countdown is not None or eta is not None:
        _check_visibility(app, countdown, eta)
    return options


def check_seconds(name: str, value: object) -> None:
    """Refuse ``value`` unless it is a finite number of seconds >= 0 (DispatchError)."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < 0
    ):
        msg = f"{name} must be a number of seconds >= 0, got {value!r}"
        raise DispatchError(msg)


def _check_eta(name: str, value: object) -> None:
    if not isinstance(value, dt.datetime) or value.tzinfo is None:
        msg = f"{name} must be a timezone-aware datetime, got {value!r}; use datetime.now(UTC)"
        raise DispatchError(msg)


def _check_expires(name: str, value: object) -> None:
    if not isinstance(value, dt.datetime):
        check_seconds(name, value)


def _check_name(name: str, value: object) -> None:
    if not isinstance(value, str) or not value:
        msg = f"{name} must be a non-empty string, got {value!r}"
        raise DispatchError(msg)


def _check_priority(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 9:
        msg = f"{name} must be an integer from 0 to 9, got {value!r}"
        raise DispatchError(msg)


_CHECKS: dict[str, Callable[[str, object], None]] = {
    "countdown": check_seconds,
    "eta": _check_eta,
    "expires": _check_expires,
    "queue": _check_name,
    "priority": _check_priority,
    "task_id": _check_name,
    "time_limit": check_seconds,
    "soft_time_limit": check_seconds,
}


def visibility_timeout(app: Celery) -> float | None:
    """Seconds before the broker redelivers an unacknowledged message (None: not Redis).

    Read from the app's transport options, so that an app given to ``install()`` reports its own.
    """
    if not is_redis_url(str(app.conf.broker_url or "")):
        return None
    transport: Any = app.conf.broker_transport_options or {}
    return float(transport.get("visibility_timeout", _KOMBU_VISIBILITY_TIMEOUT))


def _check_visibility(app: Celery, countdown: float | None, eta: dt.datetime | None) -> None:
    limit = visibility_timeout(app)
    if limit is None:
        return
    delay = countdown or 0.0
    what = "countdown"
    if eta is not None:
        delay = max(delay, (eta - dt.datetime.now(dt.timezone.utc)).total_seconds())
        what = "eta"
    if delay >= limit:
        msg = (
            f"the {what} of {delay:.1f} s reaches the broker's visibility timeout of "
            f"{limit:.1f} s, so Redis would deliver the message again and again; dispatch it "
            "later from a schedule (Beat) or raise visibility_timeout"
        )
        raise VisibilityTimeoutError(msg)
