"""Checks of the Redis a worker is about to use, run once at worker start.

A Redis that keeps nothing on disk loses every queued message when it restarts, and one that
evicts keys when full deletes queued messages, results and leases without a word: each is
reported in one WARNING line saying what is wrong and the ``redis-cli`` command that fixes it;
with the setting ``strict_redis`` the worker refuses to start instead. A Redis that refuses the
URL's credentials (``WRONGPASS``, ``NOAUTH``) stops the worker at once with one line, where
Celery would try to reconnect a hundred times. A Redis that is down is left to Celery's own
connection retries.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import redis

from crawjud_tasks._redact import redact_url
from crawjud_tasks._redis import redis_py_url
from crawjud_tasks._state import app_state
from crawjud_tasks.errors import CrawjudTasksError

if TYPE_CHECKING:
    from celery import Celery

__all__ = ["check_worker_redis", "redis_problems"]

logger = logging.getLogger("crawjud_tasks.worker")

_FIX_PERSISTENCE = "redis-cli CONFIG SET appendonly yes (and 'appendonly yes' in redis.conf)"
_FIX_EVICTION = (
    "redis-cli CONFIG SET maxmemory-policy noeviction (and 'maxmemory-policy noeviction' in "
    "redis.conf)"
)


def check_worker_redis(app: Celery) -> None:
    """Check the broker's Redis (and the library's, when it is another server) at worker start.

    Logs one WARNING per problem; stops the worker (``SystemExit(1)``, after one CRITICAL line)
    when a Redis refuses the credentials, or when ``strict_redis`` is set and a problem was found.
    """
    state = app_state(app)
    clients: dict[tuple[Any, ...], tuple[str, redis.Redis]] = {}
    broker = state.link.broker
    if broker is not None:
        url = redis_py_url(str(app.conf.broker_url).split(";", 1)[0])
        clients[_server(broker)] = (url, broker)
    try:
        own = state.link.client
    except CrawjudTasksError:  # no Redis the library can open: nothing more to check
        own = None
    if own is not None:
        clients.setdefault(_server(own), (state.link.url, own))
    found: list[str] = []
    for url, client in clients.values():
        try:
            found += redis_problems(client, url)
        except redis.AuthenticationError as exc:  # WRONGPASS, NOAUTH
            _stop(
                f"Redis at {redact_url(url)} refused the credentials in its URL ({exc}); "
                "fix the password (or user) in the URL; the worker does not start"
            )
        except (redis.ConnectionError, redis.TimeoutError):
            continue  # down: Celery's connection retries at start take it from here
    for problem in found:
        logger.warning("%s", problem)
    if found and state.settings.strict_redis:
        _stop(
            f"{len(found)} problem(s) with Redis (above) and strict_redis is set; fix them, or "
            "unset CRAWJUD_TASKS_STRICT_REDIS; the worker does not start"
        )


def redis_problems(client: redis.Redis, url: str) -> list[str]:
    """One line per setting of the Redis behind ``client`` that can lose messages.

    ``INFO`` answers on managed Redis services too; ``CONFIG GET save`` may be refused there,
    and then the snapshots are assumed to be on.

    Raises:
        redis.RedisError: the server could not be asked (down, or the credentials refused).
    """
    shown = redact_url(url)
    problems: list[str] = []
    persistence: dict[str, Any] = client.info("persistence")  # pyright: ignore[reportUnknownMemberType]  (redis-py leaves **kwargs unannotated)
    memory: dict[str, Any] = client.info("memory")  # pyright: ignore[reportUnknownMemberType]  (same)
    try:
        saves: Mapping[Any, Any] = client.config_get("save")  # pyright: ignore[reportUnknownMemberType]  (redis-py leaves **kwargs unannotated)
        save = str(saves.get("save", "unknown"))
    except redis.ResponseError:  # CONFIG renamed or disabled by a managed service
        save = "unknown"
    if not int(persistence.get("aof_enabled", 0)) and save == "":
        problems.append(
            f'Redis at {shown} keeps nothing on disk (appendonly no, save ""): queued '
            f"messages are lost when it restarts; fix: {_FIX_PERSISTENCE}"
        )
    policy = str(memory.get("maxmemory_policy", "noeviction"))
    if policy != "noeviction":
        problems.append(
            f"Redis at {shown} evicts keys when full (maxmemory-policy {policy}): queued "
            f"messages, results and leases can vanish; fix: {_FIX_EVICTION}"
        )
    return problems


def _server(client: redis.Redis) -> tuple[Any, ...]:
    kwargs: dict[str, Any] = client.connection_pool.connection_kwargs
    return (kwargs.get("host"), kwargs.get("port"), kwargs.get("path"))


def _stop(message: str) -> None:
    logger.critical("%s", message)
    raise SystemExit(1)
