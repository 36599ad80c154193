"""The beat scheduler: RedBeat's, leading through a fenced lock and firing typed schedules once.

``create_app`` sets ``beat_scheduler`` to :class:`ScheduleScheduler`, so ``crawjud-tasks beat``
and ``celery -A ... beat`` use it with no flag. Every beat tries to lead on each tick; the one
whose token holds ``<prefix>schedules:leader`` fires, the others stand by. The leader renews the
lock on every tick (``schedules.loop_interval``); if it dies, the lock expires after
``schedules.lock_timeout`` and a standby takes over at its next tick. A leader that finds its
lock gone (it stalled longer than the timeout) steps down and stands by; it never exits. Every
claim checks the token inside Redis, so a stalled leader that wakes up cannot fire.

Raw ``beat_schedule`` entries and RedBeat's own dynamic entries are still served by RedBeat's
code, under the same leadership.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

import redis
from redbeat import RedBeatScheduler
from redis.exceptions import NoScriptError

from crawjud_tasks._state import app_state
from crawjud_tasks.errors import CrawjudTasksError
from crawjud_tasks.schedules._fire import (
    ADVANCE,
    CLAIM,
    Fire,
    advance_args,
    claim_args,
    fire_key,
    new_fire,
    plan,
    publish_fires,
    recorded,
)
from crawjud_tasks.schedules._store import ScheduleStore, now_ms

__all__ = ["ScheduleScheduler"]

_LOG = logging.getLogger("crawjud_tasks.schedules")
#: Schedules read per round trip; a tick goes on with the next batch until none is due.
BATCH = 500
_EXTEND = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""


class ScheduleScheduler(RedBeatScheduler):  # type: ignore[misc]  # RedBeat is untyped
    """Celery beat's scheduler for crawjud-tasks (see the module docstring)."""

    def __init__(
        self, app: Any, *args: Any, clock: Callable[[], int] = now_ms, **kwargs: Any
    ) -> None:
        self._clock = clock
        self._token = uuid.uuid4().hex
        self._shas: dict[str, str] = {}
        self.leading = False
        settings = app_state(app).settings.schedules
        kwargs.setdefault("max_interval", settings.loop_interval)
        super().__init__(app, *args, **kwargs)  # pyright: ignore[reportUnknownMemberType]  (RedBeat is untyped)
        # RedBeat's own lock (taken at beat_init, blocking) is replaced by ours, per tick.
        self.lock_key = None
        self.lock_timeout = settings.lock_timeout
        #: Seconds between ticks (``schedules.loop_interval``).
        self.loop: float = settings.loop_interval

    # -- start-up ---------------------------------------------------------------------------

    def setup_schedule(self) -> None:
        """RedBeat's static entries, then the declared schedules reconciled with Redis."""
        super().setup_schedule()
        from crawjud_tasks.schedules._api import sync_declared  # noqa: PLC0415  (cycle)

        try:
            sync_declared(self.app)
        except CrawjudTasksError as exc:
            _LOG.error("beat: the declared schedules could not be synced: %s", exc)

    @property
    def store(self) -> ScheduleStore:
        """The schedules of this beat's app."""
        store: ScheduleStore | None = self.__dict__.get("_store")
        if store is None:
            store = self.__dict__["_store"] = ScheduleStore(self.app, self._clock)
        return store

    # -- leading ----------------------------------------------------------------------------

    def lead(self) -> bool:
        """Take or renew the leader lock; step down when it is lost. Whether this beat leads."""
        store = self.store
        client = store.client
        key = store.keys.schedule_leader()
        ttl_ms = round(self.lock_timeout * 1000)
        if self.leading:
            renewed: Any = client.eval(_EXTEND, 1, key, self._token, ttl_ms)  # pyright: ignore[reportUnknownMemberType]  (redis-py leaves eval untyped)
            if not renewed:
                _LOG.warning("beat: lost the leader lock; stepping down and standing by")
                self.leading = False
            return self.leading
        if client.set(key, self._token, nx=True, px=ttl_ms):
            _LOG.info("beat: leading (lock %s, %s s)", key, self.lock_timeout)
            self.leading = True
        return self.leading

    def tick(self, *args: Any, **kwargs: Any) -> float:
        """One pass: lead or stand by, fire what is due; seconds until the next pass."""
        try:
            if not self.lead():
                return self.loop
            if not self.fire_due():
                return self.loop
            self.fire_buffered()
            self._redbeat_entries()
            return self._until_next()
        except (redis.RedisError, CrawjudTasksError, OSError) as exc:
            _LOG.error("beat: tick failed, standing by until Redis answers: %s", exc)
            self.leading = False
            return self.loop

    def close(self) -> None:
        """Give the lock back if this beat holds it, then close as RedBeat does."""
        if self.leading:
            store = self.store
            store.client.eval(  # pyright: ignore[reportUnknownMemberType]  (redis-py leaves eval untyped)
                "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) "
                "end return 0",
                1,
                store.keys.schedule_leader(),
                self._token,
            )
            self.leading = False
        super().close()

    # -- firing -----------------------------------------------------------------------------

    def fire_due(self) -> bool:
        """Fire every due schedule, in batches; False when the lock was lost on the way."""
        store = self.store
        client = store.client
        started = time.monotonic()
        while True:
            now = self._clock()
            due: Any = client.zrangebyscore(  # pyright: ignore[reportUnknownMemberType]  (redis-py)
                store.keys.schedule_due(), "-inf", now, start=0, num=BATCH
            )
            ids = [bytes(member).decode() for member in due]
            if not ids:
                return True
            if not self._fire_batch(ids, now):
                return False
            if time.monotonic() - started > self.loop and not self.lead():
                return False

    def _fire_batch(self, ids: list[str], now: int) -> bool:
        """Claim, publish and advance the due schedules ``ids``: one round trip per step."""
        store = self.store
        keys = store.keys
        with store.pipeline(transaction=False) as pipe:
            pipe.hmget(keys.schedule_definitions(), ids)
            for schedule_id in ids:
                pipe.hget(keys.schedule_state(schedule_id), "next")
            replies: list[Any] = pipe.execute()
        specs = [None if raw is None else store.decode(raw) for raw in replies[0]]
        claims: list[Fire] = []
        advances: list[tuple[Fire, dict[str, Any]]] = []
        gone: list[str] = []
        for schedule_id, spec, raw_next in zip(ids, specs, replies[1:], strict=True):
            if spec is None or raw_next is None:
                gone.append(schedule_id)  # removed, or past its end
                continue
            next_ms = int(raw_next)
            steps = plan(spec, next_ms, now)
            fire = new_fire(
                store,
                spec,
                next_ms if steps.fire is None else steps.fire,
                field="next",
                expected=next_ms,
                following=steps.following,
                missed=steps.missed,
            )
            if steps.fire is not None:
                claims.append(fire)
                continue
            _LOG.warning(
                "beat: schedule %s missed %d fire(s) older than its catch-up window",
                spec.id,
                steps.missed,
            )
            advances.append((fire, {"sent": False}))
        if gone:
            store.client.zrem(keys.schedule_due(), *gone)
        return self._claim_publish_advance(claims, advances, now)

    def _claim_publish_advance(
        self, claims: list[Fire], advances: list[tuple[Fire, dict[str, Any]]], now: int
    ) -> bool:
        store = self.store
        answers = self._run_script(CLAIM, [claim_args(store, fire, self._token) for fire in claims])
        send: list[Fire] = []
        orphans: list[Fire] = []
        for fire, raw in zip(claims, answers, strict=True):
            answer = bytes(raw).decode()
            if answer == "lost":
                # The claims made before this one stay "claimed, not published": the next
                # leader publishes them.
                _LOG.warning("beat: lost the leader lock; stepping down and standing by")
                self.leading = False
                return False
            if answer.startswith("orphan:"):
                orphans.append(recorded(store, fire.spec, answer[7:], fire.expected or 0))
            elif answer in ("ok", "retaken"):
                send.append(fire)
            elif answer in ("sent", "held"):
                advances.append((fire, {"sent": False}))
            elif answer == "busy":
                buffered = fire.spec.overlap == "buffer_one"
                advances.append(
                    (
                        fire,
                        {
                            "sent": False,
                            "skipped": 0 if buffered else 1,
                            "buffer": fire.nominal if buffered else None,
                        },
                    )
                )
            # "paused", "moved": another process changed the schedule; nothing to do.
        for orphan, ran in zip(orphans, self._completed(orphans), strict=True):
            late = now - orphan.nominal > orphan.spec.catchup_window * 1000
            if ran or late:
                orphan.missed += 1 if late and not ran else 0
                # One that ran was published by the previous leader: it counts as fired.
                advances.append((orphan, {"sent": False, "ran": ran}))
            else:
                _LOG.info(
                    "beat: schedule %s: publishing the fire a previous leader claimed",
                    orphan.spec.id,
                )
                send.append(orphan)
        publish_fires(store, send)
        advances.extend((fire, {"sent": True}) for fire in send)
        self._run_script(
            ADVANCE, [advance_args(store, fire, self._token, **how) for fire, how in advances]
        )
        return True

    def _completed(self, fires: list[Fire]) -> list[bool]:
        """Whether each fire's idempotency key has a result (it ran), in one round trip."""
        if not fires:
            return []
        store = self.store
        with store.pipeline(transaction=False) as pipe:
            for fire in fires:
                pipe.exists(
                    store.keys.idempotency_result(fire.task, fire_key(fire.spec.id, fire.nominal))
                )
            found: list[Any] = pipe.execute()
        return [bool(value) for value in found]

    def _run_script(self, script: str, calls: list[tuple[list[str], list[Any]]]) -> list[Any]:
        """Run ``script`` once per (keys, args) in ``calls``, pipelined (EVALSHA)."""
        if not calls:
            return []
        store = self.store
        sha = self._shas.get(script)
        if sha is None:
            sha = self._shas[script] = str(store.client.script_load(script))
        with store.pipeline(transaction=False) as pipe:
            for keys, argv in calls:
                pipe.evalsha(sha, len(keys), *keys, *argv)
            try:
                return list(pipe.execute())
            except NoScriptError:  # Redis restarted or flushed its scripts
                del self._shas[script]
        return self._run_script(script, calls)

    def fire_buffered(self) -> None:
        """Send the fires that ``buffer_one`` kept waiting, once their previous run ended."""
        store = self.store
        client = store.client
        buffered: Any = client.zrange(store.keys.schedule_buffered(), 0, BATCH - 1)  # pyright: ignore[reportUnknownMemberType]  (redis-py)
        ids = [bytes(member).decode() for member in buffered]
        claims: list[Fire] = []
        for schedule_id, spec in zip(ids, store.definitions(ids), strict=True):
            pending: Any = client.hget(store.keys.schedule_state(schedule_id), "pending")
            if spec is None or pending is None:
                client.zrem(store.keys.schedule_buffered(), schedule_id)
                continue
            nominal = int(pending)
            claims.append(new_fire(store, spec, nominal, field="pending", expected=nominal))
        answers = self._run_script(CLAIM, [claim_args(store, fire, self._token) for fire in claims])
        send: list[Fire] = []
        done: list[Fire] = []  # sent already (a fire of the same millisecond): only advance
        for fire, raw in zip(claims, answers, strict=True):
            answer = bytes(raw).decode()
            if answer == "lost":
                self.leading = False
                return
            if answer in ("ok", "retaken"):
                send.append(fire)
            elif answer in ("sent", "held"):
                done.append(fire)
        publish_fires(store, send)
        self._run_script(
            ADVANCE,
            [advance_args(store, fire, self._token, sent=True) for fire in send]
            + [advance_args(store, fire, self._token, sent=False) for fire in done],
        )

    def _redbeat_entries(self) -> None:
        """RedBeat's own entries (raw ``beat_schedule``, dynamic RedBeat entries)."""
        entries: dict[str, Any] = self.schedule  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]  (RedBeat is untyped)
        for entry in entries.values():
            self.maybe_due(entry, **self._maybe_due_kwargs)  # pyright: ignore[reportUnknownMemberType]  (RedBeat is untyped)

    def _until_next(self) -> float:
        store = self.store
        first: Any = store.client.zrange(store.keys.schedule_due(), 0, 0, withscores=True)  # pyright: ignore[reportUnknownMemberType]  (redis-py)
        if not first:
            return self.loop
        wait = (float(first[0][1]) - self._clock()) / 1000
        return max(0.0, min(wait, self.loop))
