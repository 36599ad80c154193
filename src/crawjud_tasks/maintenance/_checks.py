"""The checks of a health report: each takes its time limit and answers (status, detail).

A check never raises: the runner (:mod:`._health`) turns an exception into ``down`` and a check
that outlives its limit into ``down`` too, so a hung dependency never holds the report.
"""

from __future__ import annotations

import json
import shutil
import smtplib
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import redis

from crawjud_tasks.maintenance._archive import ARCHIVE_GLOB
from crawjud_tasks.maintenance.contracts import HealthStatus

if TYPE_CHECKING:
    from celery import Celery

    from crawjud_tasks._settings import Settings

__all__ = [
    "Check",
    "Outcome",
    "check_backup_age",
    "check_beat",
    "check_consumers",
    "check_disk",
    "check_oldest_message",
    "check_redis",
    "check_smtp",
    "short_client",
]

Outcome = tuple[HealthStatus, str]
#: A check: given its time limit in seconds, its outcome.
Check = Callable[[float], Outcome]

#: Above this round trip, Redis is reported as degraded.
SLOW_REDIS = 0.05
#: Above this share of ``maxmemory``, Redis is reported as degraded.
FULL_MEMORY = 0.9


def short_client(client: redis.Redis, timeout: float, db: int | None = None) -> redis.Redis:
    """A client to the same server as ``client`` whose connects and reads give up in ``timeout``."""
    pool: Any = client.connection_pool
    kwargs = dict(pool.connection_kwargs)
    kwargs.update(socket_timeout=timeout, socket_connect_timeout=timeout, retry=None)
    if db is not None:
        kwargs["db"] = db
    return redis.Redis(
        connection_pool=redis.ConnectionPool(connection_class=pool.connection_class, **kwargs)
    )


def check_redis(client: redis.Redis) -> Check:
    """Round trip, memory against ``maxmemory``, ``maxmemory-policy`` and persistence."""

    def check(limit: float) -> Outcome:
        quick = short_client(client, limit)
        try:
            started = time.perf_counter()
            quick.ping()  # pyright: ignore[reportUnknownMemberType]  (redis-py leaves some parameters unannotated)
            latency = time.perf_counter() - started
            info: Any = quick.info()  # pyright: ignore[reportUnknownMemberType]  (redis-py leaves some parameters unannotated)
            try:
                saves: Any = quick.config_get("save")  # pyright: ignore[reportUnknownMemberType]  (redis-py leaves some parameters unannotated)
                rdb: bool | None = bool(saves.get("save") or saves.get(b"save"))
            except redis.ResponseError:  # CONFIG refused (a managed Redis): cannot tell
                rdb = None
        finally:
            quick.close()
        problems: list[str] = []
        used, most = int(info.get("used_memory", 0)), int(info.get("maxmemory", 0))
        if latency > SLOW_REDIS:
            problems.append(f"slow ({latency * 1000:.0f} ms)")
        if most and used > most * FULL_MEMORY:
            problems.append(f"memory {used / most:.0%} of maxmemory")
        policy = str(info.get("maxmemory_policy", "unknown"))
        if policy != "noeviction":
            problems.append(f"maxmemory-policy is {policy} (must be noeviction)")
        aof = bool(int(info.get("aof_enabled", 0)))
        if not aof and rdb is False:
            problems.append("persistence is off (no AOF, no RDB save points)")
        detail = f"{latency * 1000:.1f} ms, {used / 1e6:.1f} MB, {policy}"
        if problems:
            return "degraded", f"{detail}; " + "; ".join(problems)
        return "ok", detail

    return check


def _tag(raw: Any) -> str | None:
    """The delivery tag of a message as kombu's Redis transport stores it."""
    if raw is None:
        return None
    try:
        message: Any = json.loads(raw)
        return str(message["properties"]["delivery_tag"])
    except (ValueError, KeyError, TypeError):
        return None


def check_oldest_message(
    client: redis.Redis, queues: list[str], seen_key: str, stuck: float
) -> Check:
    """Messages waiting in each queue, and how long the oldest has waited.

    Messages carry no time of sending, so the oldest message of each queue is remembered
    (``seen_key``, a hash: queue -> ``<tag> <first seen>``): its wait is counted from the first
    check that saw it at the head. A wait longer than ``stuck`` seconds is degraded.
    """

    def check(limit: float) -> Outcome:
        quick = short_client(client, limit)
        now = time.time()
        try:
            pipe = quick.pipeline(transaction=False)  # pyright: ignore[reportUnknownMemberType]  (redis-py leaves some parameters unannotated)
            for queue in queues:
                pipe.llen(queue)
                pipe.lindex(queue, -1)  # kombu pushes on the left: the oldest is last
            pipe.hgetall(seen_key)
            answers: list[Any] = pipe.execute()
            seen: dict[bytes, bytes] = answers[-1]
            oldest = 0.0
            record: dict[str, str] = {}
            for index, queue in enumerate(queues):
                tag = _tag(answers[2 * index + 1])
                if tag is None:
                    continue
                before = seen.get(queue.encode(), b"").decode().split(" ")
                first = float(before[1]) if len(before) == 2 and before[0] == tag else now
                record[queue] = f"{tag} {first}"
                oldest = max(oldest, now - first)
            pipe = quick.pipeline(transaction=True)  # pyright: ignore[reportUnknownMemberType]  (redis-py leaves some parameters unannotated)
            pipe.delete(seen_key)
            if record:
                mapping: Any = record
                pipe.hset(seen_key, mapping=mapping)
                pipe.expire(seen_key, 86400)
            pipe.execute()
        finally:
            quick.close()
        waiting = {q: int(answers[2 * i]) for i, q in enumerate(queues)}
        total = sum(waiting.values())
        shown = ", ".join(f"{q} {n}" for q, n in waiting.items() if n) or "none"
        detail = f"{total} waiting ({shown}); oldest seen {oldest:.0f} s ago"
        return ("degraded", detail) if oldest > stuck else ("ok", detail)

    return check


def check_consumers(app: Celery, queues: list[str]) -> Check:
    """A live consumer for each queue, asked with a bounded ``inspect().active_queues()``."""

    def check(limit: float) -> Outcome:
        replies: Any = app.control.inspect(timeout=max(0.2, limit * 0.6)).active_queues() or {}
        consumed: set[str] = set()
        for found in replies.values():
            queue_list: Any = found or []
            consumed.update(str(queue.get("name")) for queue in queue_list)
        missing = [queue for queue in queues if queue not in consumed]
        workers = len(replies)
        if not workers:
            return "down", "no worker answered"
        if missing:
            return "degraded", f"{workers} worker(s); no consumer on {', '.join(missing)}"
        return "ok", f"{workers} worker(s) consume every queue"

    return check


def check_beat(client: redis.Redis, lock_key: str) -> Check:
    """A beat leader holds RedBeat's lock."""

    def check(limit: float) -> Outcome:
        quick = short_client(client, limit)
        try:
            ttl: Any = quick.pttl(lock_key)
        finally:
            quick.close()
        if ttl == -2:
            return "degraded", f"no beat leader ({lock_key} is not held)"
        return "ok", f"leader holds {lock_key}"

    return check


def check_smtp(settings: Settings) -> Check:
    """The SMTP server answers EHLO (nothing is sent); the outbox needs no check."""

    def check(limit: float) -> Outcome:
        mail = settings.mail
        if mail.host is None:
            return "ok", "file outbox (no SMTP server configured)"
        if mail.security == "tls":
            context = ssl.create_default_context()
            server: smtplib.SMTP = smtplib.SMTP_SSL(
                mail.host, mail.port, timeout=limit, context=context
            )
        else:
            server = smtplib.SMTP(mail.host, mail.port, timeout=limit)
        try:
            code, _ = server.ehlo()
        finally:
            server.close()
        if code != 250:
            return "degraded", f"{mail.host}:{mail.port} answered EHLO with {code}"
        return "ok", f"{mail.host}:{mail.port} answers EHLO"

    return check


def check_disk(folder: Path, minimum: float) -> Check:
    """Free space under the data folder."""

    def check(limit: float) -> Outcome:
        del limit
        probe = folder
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        usage = shutil.disk_usage(probe)
        free = usage.free / usage.total if usage.total else 0.0
        detail = f"{free:.0%} free ({usage.free / 1e9:.1f} GB) under {folder}"
        if free < minimum / 10:
            return "down", detail
        if free < minimum:
            return "degraded", detail
        return "ok", detail

    return check


def check_backup_age(folder: Path, max_age: float) -> Check:
    """The newest backup is younger than ``max_age`` seconds."""

    def check(limit: float) -> Outcome:
        del limit
        newest = max((p.stat().st_mtime for p in folder.glob(ARCHIVE_GLOB)), default=None)
        if newest is None:
            return "degraded", f"no backup in {folder}"
        age = time.time() - newest
        detail = f"last backup {age / 3600:.1f} h ago"
        return ("degraded", detail) if age > max_age else ("ok", detail)

    return check
