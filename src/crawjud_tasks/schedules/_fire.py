"""One fire of a schedule: claimed in Redis, published once, and only then advanced.

A fire is one (schedule, nominal time). Its task id and idempotency key are derived from both,
so every process that would send it sends the same message:

1. **claim** (one Lua script): only the beat whose token holds the leader lock, only while the
   schedule's next fire is still that nominal time, and (unless ``overlap="allow"``) only when
   the previous fire no longer runs;
2. **publish**: the idempotency key is set (``SET NX``) before the message is sent, so a
   second beat, a zombie leader or a restarted one that reaches this step for the same fire
   gets the first task's id back and sends nothing;
3. **advance** (one Lua script): the next fire is written only if the schedule still waits for
   this one, together with the run lease of the fire and the counters.

A beat that dies between 1 and 3 leaves the schedule on the same fire: the next leader claims it
again and step 2 keeps it from being sent twice.
"""

from __future__ import annotations

import dataclasses
import uuid
from typing import TYPE_CHECKING, Any

from crawjud_tasks import _idempotency as idempotency
from crawjud_tasks._dispatch import translate_publish_errors
from crawjud_tasks.schedules._store import dispatch_ms, first_fire_after

if TYPE_CHECKING:
    from crawjud_tasks.schedules._spec import StoredSchedule
    from crawjud_tasks.schedules._store import ScheduleStore

__all__ = ["SCHEDULE_HEADER", "Plan", "fire_key", "fire_task_id", "plan", "publish"]

#: The message header naming the fire (``<schedule id>@<nominal ms>``) that the worker reports.
SCHEDULE_HEADER = "crawjud_schedule"
_IDS = uuid.UUID("6f0b6b6e-3c36-4a53-9a64-7f6a9c1e5b10")

CLAIM = """
if ARGV[1] ~= '' and redis.call('get', KEYS[1]) ~= ARGV[1] then return 'lost' end
local state = redis.call('hmget', KEYS[2], ARGV[5], 'paused')
if state[2] == '1' then return 'paused' end
if ARGV[2] ~= '' and state[1] ~= ARGV[2] then return 'moved' end
if ARGV[4] ~= 'allow' and redis.call('exists', KEYS[4]) == 1 then return 'busy' end
local owner = redis.call('get', KEYS[3])
redis.call('set', KEYS[3], ARGV[1], 'PX', ARGV[3])
if owner and owner ~= ARGV[1] then return 'retaken' end
return 'ok'
"""

ADVANCE = """
if redis.call('hget', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
if ARGV[1] == 'next' then
  if ARGV[3] == '' then
    redis.call('hdel', KEYS[1], 'next')
    redis.call('zrem', KEYS[2], ARGV[5])
  else
    redis.call('hset', KEYS[1], 'next', ARGV[3])
    if redis.call('hget', KEYS[1], 'paused') ~= '1' then
      redis.call('zadd', KEYS[2], ARGV[4], ARGV[5])
    end
  end
else
  redis.call('hdel', KEYS[1], 'pending')
  redis.call('zrem', KEYS[4], ARGV[5])
end
local skipped = tonumber(ARGV[9])
if ARGV[11] ~= '' then
  if redis.call('hexists', KEYS[1], 'pending') == 0 then
    redis.call('hset', KEYS[1], 'pending', ARGV[11])
    redis.call('zadd', KEYS[4], ARGV[11], ARGV[5])
  else
    skipped = skipped + 1
  end
end
if ARGV[6] ~= '' then
  redis.call('set', KEYS[3], ARGV[6], 'PX', ARGV[7])
  redis.call('hset', KEYS[1], 'last_task', ARGV[6], 'last_fire', ARGV[12])
end
if ARGV[8] ~= '0' then redis.call('hincrby', KEYS[1], 'fired', ARGV[8]) end
if skipped > 0 then redis.call('hincrby', KEYS[1], 'skipped', skipped) end
if ARGV[10] ~= '0' then redis.call('hincrby', KEYS[1], 'missed', ARGV[10]) end
return 1
"""


def fire_task_id(namespace: str, schedule_id: str, nominal_ms: int) -> str:
    """The task id of one fire: the same in every process."""
    return str(uuid.uuid5(_IDS, f"{namespace}:{schedule_id}@{nominal_ms}"))


def fire_key(schedule_id: str, nominal_ms: int) -> str:
    """The idempotency key of one fire."""
    return f"schedule:{schedule_id}@{nominal_ms}"


@dataclasses.dataclass(frozen=True, slots=True)
class Plan:
    """What a due schedule does now: fire one nominal time (or none), count the missed ones,
    and wait for the next."""

    fire: int | None
    missed: int
    following: int | None


def plan(spec: StoredSchedule, next_ms: int, now_ms: int) -> Plan:
    """The plan of a schedule whose next fire ``next_ms`` is due at ``now_ms``.

    Of the fire times from ``next_ms`` to now, only the latest may run, and only if it is
    within the catch-up window; every other one is counted as missed.
    """
    timing = spec.timing()
    latest, count = timing.latest_at_or_before(now_ms, next_ms)
    if spec.end_at is not None:
        end = round(spec.end_at.timestamp() * 1000)
        if latest > end:  # fire times past the end: count up to it only
            latest, count = timing.latest_at_or_before(end, next_ms)
    following = first_fire_after(spec, latest)
    if now_ms - latest > spec.catchup_window * 1000:
        return Plan(None, count, following)
    return Plan(latest, count - 1, following)


def publish(
    store: ScheduleStore, spec: StoredSchedule, nominal_ms: int, producer: Any = None
) -> tuple[str, bool]:
    """Send the fire ``(spec, nominal_ms)`` unless it was sent already.

    Returns:
        The fire's task id, and whether this call sent it.
    """
    app = store.app
    namespace = store.settings.namespace
    name = f"{namespace}.{spec.task}"
    task_id = fire_task_id(namespace, spec.id, nominal_ms)
    key = fire_key(spec.id, nominal_ms)
    earlier = idempotency.claim(app, name, key, task_id)
    if earlier is not None:
        return earlier, False
    headers = {idempotency.HEADER: key, SCHEDULE_HEADER: f"{spec.id}@{nominal_ms}"}
    try:
        with translate_publish_errors(app):
            app.send_task(
                name,
                spec.args,
                spec.kwargs,
                task_id=task_id,
                headers=headers,
                ignore_result=spec.returns_none,
                producer=producer,
            )
    except BaseException:
        idempotency.release(app, name, key, task_id)
        raise
    return task_id, True


def advance_args(
    store: ScheduleStore,
    spec: StoredSchedule,
    *,
    field: str,
    expected: int,
    following: int | None,
    task_id: str | None,
    fired: int = 0,
    skipped: int = 0,
    missed: int = 0,
    buffer: int | None = None,
    nominal: int | None = None,
) -> tuple[list[str], list[Any]]:
    """The keys and arguments of :data:`ADVANCE` for one schedule."""
    keys = store.keys
    lease_ms = round(store.settings.schedules.run_lease_ttl * 1000)
    return (
        [
            keys.schedule_state(spec.id),
            keys.schedule_due(),
            keys.schedule_running(spec.id),
            keys.schedule_buffered(),
        ],
        [
            field,
            expected,
            "" if following is None else following,
            0 if following is None else dispatch_ms(spec, following),
            spec.id,
            task_id or "",
            lease_ms,
            fired,
            skipped,
            missed,
            "" if buffer is None else buffer,
            "" if nominal is None else nominal,
        ],
    )


def claim_args(
    store: ScheduleStore,
    spec: StoredSchedule,
    token: str,
    *,
    field: str,
    expected: int | None,
    nominal: int,
    overlap: str,
) -> tuple[list[str], list[Any]]:
    """The keys and arguments of :data:`CLAIM` for one fire."""
    keys = store.keys
    ttl_ms = max(round(spec.catchup_window * 1000), 60_000) + 60_000
    return (
        [
            keys.schedule_leader(),
            keys.schedule_state(spec.id),
            keys.schedule_fire(spec.id, nominal),
            keys.schedule_running(spec.id),
        ],
        [token, "" if expected is None else expected, ttl_ms, overlap, field],
    )
