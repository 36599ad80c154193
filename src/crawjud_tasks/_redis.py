"""The library's own Redis link, one per app (``app_state(app).redis``), for its own keys.

Run leases, idempotency keys and delivery counters live on the app's result backend when it is
Redis, else on its broker when that is Redis. The client answers with ``bytes``
(``decode_responses=False``): values may be encoded payloads, and whoever reads a value decodes
it. An unreachable Redis gives up within about ``broker_connection_timeout``: each connection
attempt may take 40% of it, with one reconnect after a pause of 10%, like a dispatch does.
"""

from __future__ import annotations

import contextlib
from collections.abc import Generator
from contextlib import AbstractContextManager
from typing import Any

import redis
from redis.backoff import ConstantBackoff
from redis.retry import Retry

from crawjud_tasks._checks import REDIS_PY_SCHEMES, REDIS_SCHEMES, url_scheme
from crawjud_tasks._redact import redact_url
from crawjud_tasks._settings import TlsSettings
from crawjud_tasks._tls import is_tls_url, ssl_options
from crawjud_tasks.errors import BrokerUnavailableError, CrawjudTasksError, RedisFullError

__all__ = ["RedisLink", "is_redis_url", "library_url", "redis_full", "redis_py_url"]

_ATTEMPT_SHARE = 0.4
_PAUSE_SHARE = 0.1


def is_redis_url(url: str | None) -> bool:
    """Whether ``url`` names a Redis broker or backend for kombu and Celery (Sentinel included)."""
    return url is not None and url_scheme(url) in REDIS_SCHEMES


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


class RedisLink:
    """The library's Redis of one app: its URL, made lazily, and the clients on it.

    Held by the app's state (``app_state(app).redis``); the URL is read from the app's
    configuration on first use, so that an app given to ``install()`` uses its own.
    """

    __slots__ = ("_broker", "_client", "_conf", "_lock", "_timeout", "_tls", "_url")

    def __init__(
        self,
        conf: Any,
        timeout: float,
        lock: AbstractContextManager[Any],
        tls: TlsSettings | None = None,
    ) -> None:
        self._conf = conf
        self._tls = tls
        self._timeout = timeout
        self._lock = lock
        self._url: str | None = None
        self._client: redis.Redis | None = None
        self._broker: redis.Redis | bool | None = False

    @property
    def url(self) -> str:
        """The URL of the library's Redis (its result backend's, else its broker's).

        Raises:
            CrawjudTasksError: neither is a Redis that redis-py can open.
        """
        if self._url is None:
            self._url = library_url(self._conf)
        return self._url

    @property
    def client(self) -> redis.Redis:
        """The redis-py client for the library's own keys, made on first use."""
        client = self._client
        if client is None:
            with self._lock:
                client = self._client
                if client is None:
                    client = self._client = _new_client(self._timeout, self.url, self._tls)
        return client

    @property
    def broker(self) -> redis.Redis | None:
        """A client on the broker's database, or ``None`` if the broker is not a Redis that
        redis-py opens from its URL (for the few broker keys the library touches)."""
        with self._lock:
            if self._broker is False:
                url = str(self._conf.broker_url or "")
                client = None
                if url_scheme(url) in REDIS_PY_SCHEMES:
                    client = _new_client(
                        self._timeout, redis_py_url(url.split(";", 1)[0]), self._tls
                    )
                self._broker = client
            broker = self._broker
        return broker if isinstance(broker, redis.Redis) else None

    def close(self) -> None:
        """Close the clients made so far (the next use makes new ones)."""
        with self._lock:
            clients = [self._client, self._broker]
            self._client, self._broker = None, False
        for client in clients:
            if isinstance(client, redis.Redis):
                client.close()

    @contextlib.contextmanager
    def errors(self) -> Generator[None, None, None]:
        """Turn redis-py's connection errors and time-outs into :class:`BrokerUnavailableError`,
        and its other errors (a refused command) into :class:`CrawjudTasksError`.

        The message names the Redis URL with its password redacted; the original error is kept
        as ``__cause__``.
        """
        try:
            yield
        except redis.OutOfMemoryError as exc:
            raise _full_error(self.url) from exc
        except redis.AuthenticationError as exc:
            msg = f"Redis at {redact_url(self.url)} refused the password: {exc}; fix the URL"
            raise BrokerUnavailableError(msg) from exc
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            msg = (
                f"Redis at {redact_url(self.url)} did not answer within {self._timeout} s "
                f"(broker_connection_timeout): {type(exc).__name__}: {exc}"
            )
            raise BrokerUnavailableError(msg) from exc
        except redis.RedisError as exc:
            # A read-only replica after a failover, out of memory, a refused script...
            msg = f"Redis at {redact_url(self.url)} refused a command: {type(exc).__name__}: {exc}"
            raise CrawjudTasksError(msg) from exc


#: What Redis answers to a write once it reached ``maxmemory`` with ``noeviction``.
_OOM_REPLY = "command not allowed when used memory > 'maxmemory'"


def redis_full(exc: BaseException, url: str) -> RedisFullError | None:
    """The :class:`RedisFullError` to raise if ``exc`` (or an error it was raised from) is
    Redis's "out of memory" reply, else ``None``. kombu wraps the reply of a pipeline in its
    own errors, so the reply's text counts as much as redis-py's type."""
    seen: BaseException | None = exc
    for _ in range(8):  # a short chain: kombu and Celery wrap the reply once or twice
        if seen is None:
            break
        if isinstance(seen, redis.OutOfMemoryError) or _OOM_REPLY in str(seen):
            return _full_error(url)
        seen = seen.__cause__ or seen.__context__
    return None


def _full_error(url: str) -> RedisFullError:
    return RedisFullError(
        f"Redis at {redact_url(url.split(';', 1)[0])} is full (it reached its maxmemory and "
        "refuses writes); free memory in it or raise maxmemory (redis-cli CONFIG SET maxmemory "
        "<bytes>): no retry helps until then"
    )


def library_url(conf: Any) -> str:
    """The URL of the library's Redis: the app's result backend, else its broker.

    Read from the app's configuration, so that an app given to ``install()`` (whose settings
    carry no URLs) uses its own. Of a failover list (``url1;url2``) the first URL is taken.
    """
    candidates = (("result_backend", conf.result_backend), ("broker_url", conf.broker_url))
    for _, url in candidates:
        if isinstance(url, str) and url_scheme(url) in REDIS_PY_SCHEMES:
            return redis_py_url(url.split(";", 1)[0])
    shown = ", ".join(
        f"{name} {redact_url(str(url)) if url else None!r}" for name, url in candidates
    )
    msg = (
        f"crawjud-tasks keeps leases and delivery records in Redis, but neither URL is a "
        f"redis://, rediss:// or redis+socket:// one ({shown}); point result_backend at a Redis"
    )
    raise CrawjudTasksError(msg)


def _new_client(timeout: float, url: str, tls: TlsSettings | None) -> redis.Redis:
    per_attempt = timeout * _ATTEMPT_SHARE
    # A rediss:// URL checks the server's certificate (ssl_* parameters in the URL win).
    ssl = ssl_options(tls or TlsSettings()) if is_tls_url(url) else {}
    return redis.Redis.from_url(  # pyright: ignore[reportUnknownMemberType]  (redis-py leaves **kwargs unannotated)
        url,
        socket_connect_timeout=per_attempt,
        socket_timeout=per_attempt,
        retry=Retry(ConstantBackoff(timeout * _PAUSE_SHARE), retries=1),
        decode_responses=False,
        **ssl,
    )
