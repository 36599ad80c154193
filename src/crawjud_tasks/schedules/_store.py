"""Schedules in Redis: their definitions, next fire, pause state, counters and last runs.

One hash holds every definition (JSON), a sorted set the next dispatch time of each active
schedule, and a hash per schedule its state. Every change is one pipelined transaction
(``MULTI``), so a beat reading between two commands never sees half a change.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgspec

from crawjud_tasks._state import app_state
from crawjud_tasks.errors import ScheduleError, UnknownScheduleError
from crawjud_tasks.schedules._spec import StoredSchedule, check_stored
from crawjud_tasks.schedules._timing import from_ms, jitter_ms, to_ms

if TYPE_CHECKING:
    import redis
    from celery import Celery
    from redis.client import Pipeline

__all__ = ["RunRecord", "ScheduleInfo", "ScheduleStore"]

#: Last runs kept per schedule.
MAX_RUNS = 20
_COUNTERS = ("fired", "skipped", "missed", "succeeded", "failed")
_DECODER = msgspec.json.Decoder(StoredSchedule)
_ENCODER = msgspec.json.Encoder()


def now_ms() -> int:
    """The wall clock in milliseconds since the epoch."""
    return round(time.time() * 1000)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class RunRecord:
    """One finished run of a schedule, as its worker reported it."""

    task_id: str
    #: The fire time this run belongs to (UTC).
    nominal: dt.datetime
    #: ``succeeded`` or ``failed``.
    outcome: str
    finished_at: dt.datetime
    #: The error's type and message, for a failed run.
    error: str | None = None


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ScheduleInfo:
    """What :func:`describe` tells about a schedule."""

    schedule: StoredSchedule
    paused: bool
    pause_note: str | None
    #: The coming fire times (UTC), soonest first; empty when paused or ended.
    next_fires: list[dt.datetime]
    last_runs: list[RunRecord]
    #: ``fired``, ``skipped``, ``missed``, ``succeeded``, ``failed``.
    counters: dict[str, int]
    #: Failed runs in a row (the count that ``pause_after_failures`` compares).
    consecutive_failures: int


class ScheduleStore:
    """The schedules of one app in its Redis."""

    __slots__ = ("app", "client", "clock", "keys", "settings", "state")

    def __init__(self, app: Celery, clock: Callable[[], int] = now_ms) -> None:
        self.app = app
        self.state = app_state(app)
        self.settings = self.state.settings
        self.keys = self.state.keys
        self.client: redis.Redis = self.state.redis
        #: Milliseconds since the epoch; tests give a frozen clock.
        self.clock = clock

    def pipeline(self, *, transaction: bool = True) -> Pipeline:
        """A pipeline on the app's Redis (``MULTI``/``EXEC`` unless ``transaction`` is off)."""
        return self.client.pipeline(transaction=transaction)  # pyright: ignore[reportUnknownMemberType]  (redis-py leaves shard_hint unannotated)

    # -- reading ----------------------------------------------------------------------------

    def get(self, schedule_id: str) -> StoredSchedule:
        """The stored schedule ``schedule_id``.

        Raises:
            UnknownScheduleError: there is none.
        """
        with self.state.redis_errors():
            raw: Any = self.client.hget(self.keys.schedule_definitions(), schedule_id)
        if raw is None:
            msg = (
                f"no schedule has the id {schedule_id!r}; `crawjud-tasks schedules list` shows them"
            )
            raise UnknownScheduleError(msg)
        return _DECODER.decode(raw)

    def all(self) -> list[StoredSchedule]:
        """Every stored schedule, by id."""
        with self.state.redis_errors():
            raw: Any = self.client.hgetall(self.keys.schedule_definitions())
        return sorted((_DECODER.decode(value) for value in raw.values()), key=lambda s: s.id)

    def decode(self, raw: bytes) -> StoredSchedule:
        """A stored definition from its JSON."""
        return _DECODER.decode(raw)

    def definitions(self, ids: list[str]) -> list[StoredSchedule | None]:
        """The stored schedules of ``ids`` (None for one that is gone), in one round trip."""
        if not ids:
            return []
        raw: Any = self.client.hmget(self.keys.schedule_definitions(), ids)
        return [None if value is None else _DECODER.decode(value) for value in raw]

    def describe(self, schedule_id: str, *, upcoming: int = 5) -> ScheduleInfo:
        """The schedule with its pause state, next fires, last runs and counters."""
        spec = self.get(schedule_id)
        with self.state.redis_errors(), self.pipeline(transaction=False) as pipe:
            pipe.hgetall(self.keys.schedule_state(schedule_id))
            pipe.lrange(self.keys.schedule_runs(schedule_id), 0, MAX_RUNS - 1)
            state_raw, runs_raw = pipe.execute()
        state = {bytes(k).decode(): bytes(v).decode() for k, v in state_raw.items()}
        paused = state.get("paused") == "1"
        fires: list[dt.datetime] = []
        following = None if paused or "next" not in state else int(state["next"])
        timing = spec.timing()
        while following is not None and len(fires) < upcoming:
            if spec.end_at is not None and following > to_ms(spec.end_at):
                break
            fires.append(from_ms(following))
            following = timing.next_after(following)
        runs = [_run_record(json.loads(item)) for item in runs_raw]
        return ScheduleInfo(
            schedule=spec,
            paused=paused,
            pause_note=state.get("note") or None,
            next_fires=fires,
            last_runs=runs,
            counters={name: int(state.get(name, 0)) for name in _COUNTERS},
            consecutive_failures=int(state.get("failures", 0)),
        )

    # -- changing ---------------------------------------------------------------------------

    def put(self, spec: StoredSchedule, *, mode: str) -> str:
        """Store ``spec``: ``mode`` ``add`` (refused if the id exists), ``update`` (refused if
        it does not) or ``upsert``. Returns ``added``, ``updated`` or ``unchanged``.

        The counters, last runs and pause state of an existing schedule are kept; its next fire
        is computed again when its timing changed.

        Raises:
            ScheduleError: ``add`` of an existing id, or a field is invalid.
            UnknownScheduleError: ``update`` of an id that does not exist.
        """
        check_stored(spec)
        try:
            old: StoredSchedule | None = self.get(spec.id)
        except UnknownScheduleError:
            if mode == "update":
                raise
            old = None
        if old is not None and mode == "add":
            msg = f"a schedule with the id {spec.id!r} exists; update it, or remove it first"
            raise ScheduleError(msg)
        if old is not None and old == spec:
            return "unchanged"
        state_key = self.keys.schedule_state(spec.id)
        retime = old is None or _timing_fields(old) != _timing_fields(spec)
        with self.state.redis_errors():
            paused = self.client.hget(state_key, "paused") == b"1"
            with self.pipeline() as pipe:
                pipe.hset(self.keys.schedule_definitions(), spec.id, _ENCODER.encode(spec))
                if retime:
                    self._schedule_next(pipe, spec, self.clock(), paused=paused)
                pipe.execute()
        return "added" if old is None else "updated"

    def pause(self, schedule_id: str, note: str = "") -> None:
        """Stop firing ``schedule_id`` until :meth:`resume` (takes effect within one tick)."""
        self.get(schedule_id)
        with self.state.redis_errors(), self.pipeline() as pipe:
            pipe.hset(
                self.keys.schedule_state(schedule_id),
                mapping={"paused": "1", "note": note[:500], "paused_at": str(self.clock())},
            )
            pipe.zrem(self.keys.schedule_due(), schedule_id)
            pipe.zrem(self.keys.schedule_buffered(), schedule_id)
            pipe.execute()

    def resume(self, schedule_id: str) -> None:
        """Fire ``schedule_id`` again from its next fire time after now (missed fires while
        paused are not run) and reset its failure count."""
        spec = self.get(schedule_id)
        with self.state.redis_errors(), self.pipeline() as pipe:
            pipe.hdel(self.keys.schedule_state(schedule_id), "paused", "note", "paused_at")
            pipe.hset(self.keys.schedule_state(schedule_id), "failures", 0)
            self._schedule_next(pipe, spec, self.clock(), paused=False)
            pipe.execute()

    def remove(self, schedule_id: str) -> None:
        """Delete ``schedule_id`` with its state and last runs."""
        self.get(schedule_id)
        with self.state.redis_errors(), self.pipeline() as pipe:
            pipe.hdel(self.keys.schedule_definitions(), schedule_id)
            pipe.zrem(self.keys.schedule_due(), schedule_id)
            pipe.zrem(self.keys.schedule_buffered(), schedule_id)
            pipe.delete(
                self.keys.schedule_state(schedule_id),
                self.keys.schedule_runs(schedule_id),
                self.keys.schedule_running(schedule_id),
            )
            pipe.execute()

    def _schedule_next(
        self, pipe: Any, spec: StoredSchedule, after_ms: int, *, paused: bool
    ) -> None:
        """Set the next fire of ``spec`` to its first fire time after ``after_ms``."""
        following = first_fire_after(spec, after_ms)
        state_key = self.keys.schedule_state(spec.id)
        if following is None:
            pipe.hdel(state_key, "next")
            pipe.zrem(self.keys.schedule_due(), spec.id)
            return
        pipe.hset(state_key, "next", following)
        if not paused:
            pipe.zadd(self.keys.schedule_due(), {spec.id: dispatch_ms(spec, following)})


def first_fire_after(spec: StoredSchedule, after_ms: int) -> int | None:
    """The first fire time of ``spec`` after ``after_ms``, within its start and end."""
    if spec.start_at is not None:
        after_ms = max(after_ms, to_ms(spec.start_at) - 1)
    following = spec.timing().next_after(after_ms)
    if following is None or (spec.end_at is not None and following > to_ms(spec.end_at)):
        return None
    return following


def dispatch_ms(spec: StoredSchedule, nominal_ms: int) -> int:
    """When the fire of ``nominal_ms`` is sent: its time plus the schedule's jitter."""
    return nominal_ms + jitter_ms(spec.id, nominal_ms, round(spec.jitter * 1000))


def _timing_fields(spec: StoredSchedule) -> tuple[Any, ...]:
    return (spec.cron, spec.every, spec.timezone, spec.start_at, spec.end_at, spec.jitter)


def _run_record(data: dict[str, Any]) -> RunRecord:
    return RunRecord(
        task_id=str(data["task_id"]),
        nominal=from_ms(int(data["nominal"])),
        outcome=str(data["outcome"]),
        finished_at=from_ms(int(data["finished_at"])),
        error=data.get("error"),
    )
