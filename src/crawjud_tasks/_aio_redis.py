"""redis-py asyncio clients on the same server as a sync client, for the awaitable API.

A host on asyncio (FastAPI...) waits for results and run events without blocking its event loop
and without a thread per wait: these clients read on the loop itself. A wait makes its client
and closes it when it ends (a result's wait needs a connection of its own for its subscription
anyway), so no connection outlives the loop it was made on.
"""

from __future__ import annotations

from typing import Any

import redis
import redis.asyncio as aioredis

__all__ = ["async_client_like"]

#: The connection settings that mean the same to redis-py's sync and asyncio connections.
_SHARED_KWARGS = frozenset(
    {
        "host",
        "port",
        "path",
        "db",
        "username",
        "password",
        "socket_timeout",
        "socket_connect_timeout",
        "client_name",
        "ssl_keyfile",
        "ssl_certfile",
        "ssl_cert_reqs",
        "ssl_ca_certs",
        "ssl_ca_data",
        "ssl_check_hostname",
        "ssl_min_version",
        "ssl_ciphers",
    }
)

_CLASSES: dict[type[Any], type[Any]] = {
    redis.UnixDomainSocketConnection: aioredis.UnixDomainSocketConnection,
    redis.SSLConnection: aioredis.SSLConnection,
    redis.Connection: aioredis.Connection,
}


def async_client_like(client: redis.Redis) -> aioredis.Redis:
    """A new asyncio client on ``client``'s server and database, with its timeouts and TLS
    settings; replies are ``bytes``. The caller closes it (``await c.aclose()``)."""
    pool: Any = client.connection_pool
    kwargs: dict[str, Any] = {
        key: value for key, value in pool.connection_kwargs.items() if key in _SHARED_KWARGS
    }
    connection_class = next(
        (ours for theirs, ours in _CLASSES.items() if issubclass(pool.connection_class, theirs)),
        aioredis.Connection,
    )
    async_pool = aioredis.ConnectionPool(connection_class=connection_class, **kwargs)
    return aioredis.Redis.from_pool(async_pool)
