"""Small value rules that several modules share: each written once, here.

Each rule answers a question; the caller raises its own one-line error (which names the setting,
the option or the field, in the caller's words).
"""

from __future__ import annotations

import math
from typing import TypeGuard

__all__ = [
    "BACKEND_SCHEMES",
    "BROKER_SCHEMES",
    "REDIS_PY_SCHEMES",
    "REDIS_SCHEMES",
    "is_connection_error",
    "is_count",
    "is_seconds",
    "url_scheme",
]

#: Schemes of kombu's and Celery's Redis transports.
REDIS_SCHEMES = frozenset({"redis", "rediss", "redis+socket", "socket", "sentinel"})
#: The Redis schemes redis-py opens from the URL alone (Sentinel needs its master name).
REDIS_PY_SCHEMES = REDIS_SCHEMES - {"sentinel"}
#: Schemes a broker URL may have.
BROKER_SCHEMES = REDIS_SCHEMES | {"amqp", "amqps", "pyamqp"}
#: Schemes a result backend URL may have.
BACKEND_SCHEMES = REDIS_SCHEMES | {"rpc"}


def url_scheme(url: str) -> str:
    """The scheme of ``url``, lower case (``""`` if it has none)."""
    return url.partition("://")[0].lower() if "://" in url else ""


def is_seconds(value: object, *, minimum: float = 0.0) -> bool:
    """Whether ``value`` is a finite number (not a bool) of at least ``minimum`` seconds."""
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value >= minimum
    )


def is_count(value: object, *, minimum: int = 1) -> bool:
    """Whether ``value`` is an integer (not a bool) of at least ``minimum``."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def is_connection_error(exc: object) -> TypeGuard[BaseException]:
    """Whether ``exc`` says a server did not answer (refused, reset, timed out), as opposed to
    an answer that was an error.

    Celery's Redis result backend gives up on an unreachable server with a bare ``RuntimeError``
    whose ``__cause__`` is such an error: callers test the cause.
    """
    # redis-py loads on use: settings (and the container probe that reads them) import no Redis.
    from redis.exceptions import ConnectionError as RedisConnectionError  # noqa: PLC0415
    from redis.exceptions import TimeoutError as RedisTimeoutError  # noqa: PLC0415

    return isinstance(exc, OSError | RedisConnectionError | RedisTimeoutError)
