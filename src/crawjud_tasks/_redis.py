"""The library's own Redis client, one per app, for the keys crawjud-tasks keeps itself.

Run leases, idempotency keys and delivery counters live on the app's result backend when it is
Redis, else on its broker when that is Redis. The client answers with ``bytes``
(``decode_responses=False``): values may be encoded payloads, and whoever reads a value decodes
it. An unreachable Redis gives up within about ``broker_connection_timeout``: each connection
attempt may take 40% of it, with one reconnect after a pause of 10%, like a dispatch does.
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

import redis
from redis.backoff import ConstantBackoff
from redis.retry import Retry

from crawjud_tasks._redact import redact_url
from crawjud_tasks._state import app_settings
from crawjud_tasks.errors import BrokerUnavailableError, CrawjudTasksError

if TYPE_CHECKING:
    from celery import Celery

    from crawjud_tasks._settings import Settings

__all__ = [
    "broker_client",
    "close_redis_client",
    "is_redis_url",
    "redis_client",
    "redis_py_url",
    "translate_redis_errors",
]

#: Schemes of kombu's and Celery's Redis transports.
_KOMBU_REDIS_SCHEMES = frozenset({"redis", "rediss", "redis+socket", "socket", "sentinel"})
#: The ones redis-py opens from the URL alone (Sentinel needs its master name and options).
_REDIS_PY_SCHEMES = frozenset({"redis", "rediss", "redis+socket", "socket"})
_ATTEMPT_SHARE = 0.4
_PAUSE_SHARE = 0.1

_CLIENTS: weakref.WeakKeyDictionary[Celery, redis.Redis] = weakref.WeakKeyDictionary()
_BROKER_CLIENTS: weakref.WeakKeyDictionary[Celery, redis.Redis | None] = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


def is_redis_url(url: str | None) -> bool:
    """Whether ``url`` names a Redis broker or backend for kombu and Celery (Sentinel included)."""
    return url is not None and _scheme(url) in _KOMBU_REDIS_SCHEMES


def redis_py_url(url: str) -> str:
    """A kombu Redis URL as redis-py spells it (``redis+socket://`` becomes ``unix://``).

    Other URLs (``redis://``, ``rediss://``) are returned as they are.
    """
    scheme, _, rest = url.partition("://")
    if scheme in {"redis+socket", "socket"}:
        path, _, query = rest.partition("?")
        db = query.partition("virtual_host=")[2].partition("&")[0] or "0"
        return f"unix://{path}?db={db}"
    return url


def redis_client(app: Celery) -> redis.Redis:
    """The redis-py client for the library's own keys of ``app``, made on first use.

    Raises:
        CrawjudTasksError: ``app`` has no crawjud-tasks settings, or neither its result backend
            nor its broker is a Redis that redis-py can open.
    """
    with _LOCK:
        client = _CLIENTS.get(app)
        if client is None:
            client = _CLIENTS[app] = _new_client(app_settings(app), _library_url(app))
        return client


def broker_client(app: Celery) -> redis.Redis | None:
    """A redis-py client on ``app``'s broker database, or ``None`` if the broker is not a Redis
    that redis-py opens from its URL (for the few broker keys the library touches)."""
    with _LOCK:
        if app not in _BROKER_CLIENTS:
            url = str(app.conf.broker_url or "")
            client = None
            if _scheme(url) in _REDIS_PY_SCHEMES:
                client = _new_client(app_settings(app), redis_py_url(url.split(";", 1)[0]))
            _BROKER_CLIENTS[app] = client
        return _BROKER_CLIENTS[app]


def close_redis_client(app: Celery) -> None:
    """Close ``app``'s library clients, if it made them (the next use makes new ones)."""
    with _LOCK:
        clients = [_CLIENTS.pop(app, None), _BROKER_CLIENTS.pop(app, None)]
    for client in clients:
        if client is not None:
            client.close()


@contextlib.contextmanager
def translate_redis_errors(app: Celery) -> Generator[None, None, None]:
    """Turn redis-py's connection errors and time-outs into :class:`BrokerUnavailableError`,
    and its other errors (a refused command) into :class:`CrawjudTasksError`.

    The message names the Redis URL with its password redacted; the original error is kept as
    ``__cause__``.
    """
    try:
        yield
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        settings = app_settings(app)
        url = redact_url(_library_url(app))
        msg = (
            f"Redis at {url} did not answer within {settings.broker_connection_timeout} s "
            f"(broker_connection_timeout): {type(exc).__name__}: {exc}"
        )
        raise BrokerUnavailableError(msg) from exc
    except redis.RedisError as exc:
        # A read-only replica after a failover, out of memory, a refused script...
        url = redact_url(_library_url(app))
        msg = f"Redis at {url} refused a command: {type(exc).__name__}: {exc}"
        raise CrawjudTasksError(msg) from exc


def _scheme(url: str) -> str:
    return url.split("://", 1)[0].lower()


def _library_url(app: Celery) -> str:
    """The URL of the library's Redis: the app's result backend, else its broker.

    Read from the app's configuration, so that an app given to ``install()`` (whose settings
    carry no URLs) uses its own. Of a failover list (``url1;url2``) the first URL is taken.
    """
    conf: Any = app.conf
    candidates = (("result_backend", conf.result_backend), ("broker_url", conf.broker_url))
    for _, url in candidates:
        if isinstance(url, str) and _scheme(url) in _REDIS_PY_SCHEMES:
            return redis_py_url(url.split(";", 1)[0])
    shown = ", ".join(
        f"{name} {redact_url(str(url)) if url else None!r}" for name, url in candidates
    )
    msg = (
        f"crawjud-tasks keeps leases and delivery records in Redis, but neither URL is a "
        f"redis://, rediss:// or redis+socket:// one ({shown}); point result_backend at a Redis"
    )
    raise CrawjudTasksError(msg)


def _new_client(settings: Settings, url: str) -> redis.Redis:
    timeout = settings.broker_connection_timeout
    per_attempt = timeout * _ATTEMPT_SHARE
    return redis.Redis.from_url(  # pyright: ignore[reportUnknownMemberType]  (redis-py leaves **kwargs unannotated)
        url,
        socket_connect_timeout=per_attempt,
        socket_timeout=per_attempt,
        retry=Retry(ConstantBackoff(timeout * _PAUSE_SHARE), retries=1),
        decode_responses=False,
    )
