"""Redis hygiene: one time-budgeted ``SCAN`` pass over the library's keys.

Each SCAN page is inspected with one pipeline (``PTTL`` and ``OBJECT IDLETIME`` per key,
``MEMORY USAGE`` of a sample) and acted on with another (``UNLINK`` in batches, ``EXPIRE``), so
other clients wait at most one short pipeline, and the pass rests between pages. A key of a
family that should expire but has no TTL gets one (the policy minus the time it sat idle), or is
unlinked when it sat idle longer than the policy; a TTL longer than the policy is shortened.
Celery's control reply queues left behind (``<id>.reply.<namespace>.pidbox`` lists with no TTL,
idle for minutes) are unlinked. The cursor is kept in Redis, so a pass stopped by its budget
goes on where it stopped next time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from crawjud_tasks._keys import Keys
from crawjud_tasks.maintenance.contracts import HygieneReport

if TYPE_CHECKING:
    import redis

    from crawjud_tasks._settings import Settings

__all__ = ["REPLY_IDLE", "family_of", "hygiene_pass", "ttl_policies"]

#: Seconds a control reply queue may sit idle before it counts as orphaned.
REPLY_IDLE = 300
#: Seconds a lease key may live without a TTL (a lease is always set with one).
_LEASE_POLICY = 60.0
#: Distinct families reported; others are counted as ``other``.
_MAX_FAMILIES = 50
#: ``MEMORY USAGE`` is asked of one key in this many (and of each family's first key).
MEMORY_SAMPLE = 10
#: Share of a pass spent scanning; after each page it rests for the rest, so that other
#: clients keep their latency on a busy machine.
_DUTY = 0.75


def family_of(key: bytes, prefix: bytes) -> str:
    """The family of a library key: ``run``, ``idempotency``, ``results``, ``mail``..."""
    rest = key[len(prefix) :] if key.startswith(prefix) else key
    if rest.startswith(b"celery-task-meta-") or rest.startswith(b"chord-unlock"):
        return "results"
    head = rest.split(b":", 1)[0]
    return head.decode("utf-8", errors="replace")[:40] or "other"


def ttl_policies(settings: Settings) -> dict[str, float]:
    """Seconds each family's keys should live at most."""
    return {
        "run": settings.bots.retention,
        "idempotency": settings.idempotency_ttl,
        "deliveries": settings.idempotency_ttl,
        "mail": settings.idempotency_ttl,
        "results": settings.result_expires,
        "lease": _LEASE_POLICY,
    }


@dataclass
class _Pass:
    dry_run: bool
    policies: dict[str, float]
    prefix: bytes
    reply_idle: float = REPLY_IDLE
    scanned: int = 0
    unlinked: int = 0
    expired: int = 0
    keys: dict[str, int] = field(default_factory=dict[str, int])
    #: Per family: bytes of the keys measured, and how many were measured.
    measured: dict[str, tuple[int, int]] = field(default_factory=dict[str, tuple[int, int]])

    def family(self, key: bytes, *, replies: bool) -> str:
        family = "replies" if replies else family_of(key, self.prefix)
        if family not in self.keys and len(self.keys) >= _MAX_FAMILIES:
            return "other"
        return family

    def memory(self) -> dict[str, int]:
        """Bytes by family: the mean of the keys measured, times the keys seen."""
        return {
            family: round(self.keys[family] * used / count)
            for family, (used, count) in self.measured.items()
            if count
        }

    def page(self, client: redis.Redis, keys: list[bytes], *, replies: bool) -> None:
        families = [self.family(key, replies=replies) for key in keys]
        # MEMORY USAGE of one key in MEMORY_SAMPLE, and of the first key of each family.
        sampled = [
            index % MEMORY_SAMPLE == 0 or family not in self.measured
            for index, family in enumerate(families)
        ]
        pipe = client.pipeline(transaction=False)  # pyright: ignore[reportUnknownMemberType]  (redis-py leaves some parameters unannotated)
        for key, measure in zip(keys, sampled, strict=True):
            pipe.pttl(key)
            pipe.object("idletime", key)  # pyright: ignore[reportUnknownMemberType]  (redis-py leaves some parameters unannotated)
            if measure:
                pipe.memory_usage(key)  # pyright: ignore[reportUnknownMemberType]  (redis-py leaves some parameters unannotated)
        answers: list[Any] = pipe.execute(raise_on_error=False)
        unlink: list[bytes] = []
        expire: list[tuple[bytes, int]] = []
        position = 0
        for key, family, measure in zip(keys, families, sampled, strict=True):
            pttl, idle = answers[position], answers[position + 1]
            size = answers[position + 2] if measure else None
            position += 3 if measure else 2
            if not isinstance(pttl, int) or pttl == -2:  # -2: gone meanwhile
                continue
            self.scanned += 1
            self.keys[family] = self.keys.get(family, 0) + 1
            if isinstance(size, int):
                used, count = self.measured.get(family, (0, 0))
                self.measured[family] = (used + size, count + 1)
            idle_s = idle if isinstance(idle, int) else 0
            if replies:
                policy: float | None = 0.0 if idle_s >= self.reply_idle else None
            else:
                policy = self.policies.get(family)
            action = _action(policy, pttl, idle_s)
            if action == 0:
                unlink.append(key)
            elif action is not None:
                expire.append((key, action))
        self.unlinked += len(unlink)
        self.expired += len(expire)
        if self.dry_run or not (unlink or expire):
            return
        pipe = client.pipeline(transaction=False)  # pyright: ignore[reportUnknownMemberType]  (redis-py leaves some parameters unannotated)
        if unlink:
            pipe.unlink(*unlink)
        for key, seconds in expire:
            pipe.expire(key, seconds)
        pipe.execute(raise_on_error=False)


def _action(policy: float | None, pttl: int, idle: int) -> int | None:
    """What a key needs: ``0`` to be unlinked, seconds of TTL to be given, ``None`` nothing.

    With no TTL: unlinked once it sat idle longer than its policy, else it gets what is left;
    with a TTL longer than the policy: shortened to the policy.
    """
    if policy is None:
        return None
    if pttl == -1:
        left = policy - idle
        return 0 if left <= 0 else max(1, round(left))
    if pttl > policy * 1000:
        return max(1, round(policy))
    return None


def _scan(
    client: redis.Redis,
    *,
    match: str,
    cursor_key: str,
    batch: int,
    deadline: float,
    on_page: Callable[[list[bytes]], None],
) -> bool:
    """Scan from the saved cursor until the end or the deadline; True if it reached the end."""
    saved: Any = client.get(cursor_key)
    cursor = int(saved) if saved else 0
    while True:
        started = time.monotonic()
        page: Any = client.scan(cursor=cursor, match=match, count=batch)  # pyright: ignore[reportUnknownMemberType]  (redis-py leaves some parameters unannotated)
        cursor = int(page[0])
        if page[1]:
            on_page(list(page[1]))
        if cursor == 0:
            client.delete(cursor_key)
            return True
        if time.monotonic() >= deadline:
            client.set(cursor_key, cursor, ex=86400)
            return False
        time.sleep((time.monotonic() - started) * (1 - _DUTY) / _DUTY)


def hygiene_pass(
    settings: Settings,
    library: redis.Redis,
    broker: redis.Redis | None,
    *,
    cursor_keys: tuple[str, str],
    dry_run: bool,
    budget: float | None = None,
    reply_idle: float = REPLY_IDLE,
) -> HygieneReport:
    """One pass within ``budget`` seconds (default ``maintenance.hygiene_budget``).

    Args:
        settings: The app's settings (prefix, policies, batch size).
        library: The library's Redis.
        broker: The broker's Redis (for the control reply queues), if redis-py opens it.
        cursor_keys: Where the library and broker scan cursors are kept between passes.
        dry_run: Count what would be done, change nothing.
        budget: Seconds this pass may scan.
        reply_idle: Seconds a control reply queue must have sat idle to be unlinked.
    """
    started = time.monotonic()
    seconds = settings.maintenance.hygiene_budget if budget is None else budget
    deadline = started + seconds
    batch = settings.maintenance.hygiene_batch
    keys = Keys(settings.key_prefix)
    prefix = keys.prefix.encode()
    work = _Pass(
        dry_run=dry_run, policies=ttl_policies(settings), prefix=prefix, reply_idle=reply_idle
    )
    complete = _scan(
        library,
        match=keys.library_pattern(),
        cursor_key=cursor_keys[0],
        batch=batch,
        deadline=deadline,
        on_page=lambda found: work.page(library, found, replies=False),
    )
    if broker is not None and complete:
        complete = _scan(
            broker,
            match=keys.reply_queues(settings.namespace),
            cursor_key=cursor_keys[1],
            batch=batch,
            deadline=deadline,
            on_page=lambda found: work.page(broker, found, replies=True),
        )
    return HygieneReport(
        dry_run=dry_run,
        scanned=work.scanned,
        unlinked=work.unlinked,
        expired=work.expired,
        complete=complete,
        seconds=round(time.monotonic() - started, 3),
        memory=work.memory(),
        keys=work.keys,
    )
