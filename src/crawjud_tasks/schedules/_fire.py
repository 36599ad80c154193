"""One fire of a schedule: claimed in Redis, published, and only then advanced.

A fire is one (schedule, nominal time). Its task id and idempotency key are derived from both,
so every process that would send it sends the same message:

1. **claim** (one Lua script): only the beat whose token holds the leader lock, only while the
   schedule's next fire is still the one it read, and (unless ``overlap="allow"``) only when the
   previous fire no longer runs. The claim records the fire as *claimed, not published*: the
   fire key holds the beat's token, the idempotency key the fire's task id, and the schedule's
   state the fire with the advance it will make (``claimed``);
2. **publish** the message with that task id and idempotency key;
3. **advance** (one Lua script): only if the schedule still waits for this fire, write its next
   fire, its run lease and counters, drop ``claimed`` and mark the fire key ``sent:<token>``.

A beat claims, publishes and advances a whole batch of due schedules at once (one pipelined round
trip per step); each fire still goes through the three steps in order. A beat that dies after
the claim leaves ``claimed`` behind: the next leader finds it in its own claim and publishes that
fire again with the same task id and idempotency key (unless the idempotency key already has a
result: the fire ran), then advances it. The fire is not lost; if the dead beat had published it
already (it died between 2 and 3), the same message goes twice, and the worker's idempotency
check gives the second copy the first's result once the first completed.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from crawjud_tasks import _idempotency as idempotency
from crawjud_tasks._dispatch import BATCH_SIZE, translate_publish_errors
from crawjud_tasks.schedules._store import dispatch_ms, first_fire_after

if TYPE_CHECKING:
    from crawjud_tasks.schedules._spec import StoredSchedule
    from crawjud_tasks.schedules._store import ScheduleStore

__all__ = [
    "ADVANCE",
    "CLAIM",
    "SCHEDULE_HEADER",
    "Fire",
    "Plan",
    "fire_key",
    "fire_task_id",
    "plan",
    "publish_fires",
]

#: The message header naming the fire (``<schedule id>@<nominal ms>``) that the worker reports.
SCHEDULE_HEADER = "crawjud_schedule"
_IDS = uuid.UUID("6f0b6b6e-3c36-4a53-9a64-7f6a9c1e5b10")

#: KEYS: leader, state, fire, running, idempotency. ARGV: token ('' = no leader check), field
#: ('next', 'pending', or '' for a manual fire: no pause and no next-fire check), expected,
#: fire ttl ms, overlap, task id, idempotency ttl ms, the advance to record ('' = none).
CLAIM = """
if ARGV[1] ~= '' and redis.call('get', KEYS[1]) ~= ARGV[1] then return 'lost' end
if ARGV[2] ~= '' then
  local state = redis.call('hmget', KEYS[2], ARGV[2], 'paused', 'claimed')
  if ARGV[2] == 'next' and state[3] then return 'orphan:' .. state[3] end
  if state[2] == '1' then return 'paused' end
  if state[1] ~= ARGV[3] then return 'moved' end
end
if ARGV[5] ~= 'allow' and redis.call('exists', KEYS[4]) == 1 then return 'busy' end
local owner = redis.call('get', KEYS[3])
if owner and string.sub(owner, 1, 5) == 'sent:' then return 'sent' end
if not redis.call('set', KEYS[5], ARGV[6], 'NX', 'PX', ARGV[7]) then
  if redis.call('get', KEYS[5]) ~= ARGV[6] then return 'held' end
end
redis.call('set', KEYS[3], ARGV[1], 'PX', ARGV[4])
if ARGV[8] ~= '' then redis.call('hset', KEYS[2], 'claimed', ARGV[8]) end
if owner and owner ~= ARGV[1] then return 'retaken' end
return 'ok'
"""

#: KEYS: state, due, running, buffered, fire. ARGV: field, expected, following ('' = none),
#: its dispatch ms, id, task id ('' = none sent), lease ms, fired, skipped, missed, buffer
#: ('' = none), nominal, token.
ADVANCE = """
if redis.call('hget', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
if ARGV[1] == 'next' then
  redis.call('hdel', KEYS[1], 'claimed')
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
  redis.call('set', KEYS[5], 'sent:' .. ARGV[13], 'KEEPTTL')
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


@dataclasses.dataclass(slots=True, kw_only=True)
class Fire:
    """One fire that a beat (or ``trigger``) claims, publishes and advances."""

    spec: StoredSchedule
    nominal: int
    #: ``next`` (the schedule's timing), ``pending`` (a fire ``buffer_one`` kept) or ``""``
    #: (``trigger``).
    field: str
    #: The value ``field`` must still hold (the next fire read before the claim).
    expected: int | None
    #: The full task name and the fire's task id (:func:`fire_task_id`).
    task: str
    task_id: str
    following: int | None = None
    missed: int = 0

    def record(self) -> str:
        """The advance the fire makes, as its claim records it (``nominal|following|missed``)."""
        following = "" if self.following is None else str(self.following)
        return f"{self.nominal}|{following}|{self.missed}"


def new_fire(
    store: ScheduleStore,
    spec: StoredSchedule,
    nominal: int,
    *,
    field: str,
    expected: int | None,
    following: int | None = None,
    missed: int = 0,
) -> Fire:
    """The fire ``(spec, nominal)`` of ``store``'s app."""
    namespace = store.settings.namespace
    return Fire(
        spec=spec,
        nominal=nominal,
        field=field,
        expected=expected,
        task=f"{namespace}.{spec.task}",
        task_id=fire_task_id(namespace, spec.id, nominal),
        following=following,
        missed=missed,
    )


def recorded(store: ScheduleStore, spec: StoredSchedule, record: str, expected: int) -> Fire:
    """The fire a claim recorded (``nominal|following|missed``) and nobody advanced."""
    nominal, following, missed = record.split("|")
    return new_fire(
        store,
        spec,
        int(nominal),
        field="next",
        expected=expected,
        following=int(following) if following else None,
        missed=int(missed),
    )


def claim_args(store: ScheduleStore, fire: Fire, token: str) -> tuple[list[str], list[Any]]:
    """The keys and arguments of :data:`CLAIM` for ``fire``."""
    keys = store.keys
    spec = fire.spec
    fire_ttl = max(round(spec.catchup_window * 1000), 60_000) + 60_000
    idempotency_ttl = round(store.settings.idempotency_ttl * 1000)
    return (
        [
            keys.schedule_leader(),
            keys.schedule_state(spec.id),
            keys.schedule_fire(spec.id, fire.nominal),
            keys.schedule_running(spec.id),
            keys.idempotency(fire.task, fire_key(spec.id, fire.nominal)),
        ],
        [
            token,
            fire.field,
            "" if fire.expected is None else fire.expected,
            fire_ttl,
            spec.overlap,
            fire.task_id,
            idempotency_ttl,
            fire.record() if fire.field == "next" else "",
        ],
    )


def advance_args(
    store: ScheduleStore,
    fire: Fire,
    token: str,
    *,
    sent: bool,
    ran: bool = False,
    skipped: int = 0,
    buffer: int | None = None,
) -> tuple[list[str], list[Any]]:
    """The keys and arguments of :data:`ADVANCE` for ``fire`` (``sent``: it was published now;
    ``ran``: a previous leader published it and it ran, so it counts as fired)."""
    keys = store.keys
    spec = fire.spec
    lease_ms = round(store.settings.schedules.run_lease_ttl * 1000)
    following = fire.following
    return (
        [
            keys.schedule_state(spec.id),
            keys.schedule_due(),
            keys.schedule_running(spec.id),
            keys.schedule_buffered(),
            keys.schedule_fire(spec.id, fire.nominal),
        ],
        [
            fire.field,
            fire.expected,
            "" if following is None else following,
            0 if following is None else dispatch_ms(spec, following),
            spec.id,
            fire.task_id if sent else "",
            lease_ms,
            1 if sent or ran else 0,
            skipped,
            fire.missed,
            "" if buffer is None else buffer,
            fire.nominal,
            token,
        ],
    )


def publish_fires(store: ScheduleStore, fires: Sequence[Fire]) -> None:
    """Publish the messages of ``fires`` through one producer, pipelined in batches.

    Each message is the one Celery builds (``amqp.create_task_message``) with the fire's task id
    and the idempotency and schedule headers; no result subscription is made.

    Raises:
        BrokerUnavailableError: the broker did not take them (the claims stay, and the next tick
            publishes them again).
    """
    if not fires:
        return
    app = store.app
    amqp: Any = app.amqp
    router: Any = amqp.router
    send_sent_event = bool(app.conf.task_send_sent_event)
    with (
        translate_publish_errors(app),
        app.producer_or_acquire() as producer,
        producer.batch(max_size=BATCH_SIZE),
    ):
        for fire in fires:
            spec = fire.spec
            message = amqp.create_task_message(
                fire.task_id,
                fire.task,
                spec.args,
                spec.kwargs,
                create_sent_event=send_sent_event,
                ignore_result=spec.returns_none,
            )
            route = router.route({}, fire.task, spec.args, spec.kwargs, None)
            headers = {
                idempotency.HEADER: fire_key(spec.id, fire.nominal),
                SCHEDULE_HEADER: f"{spec.id}@{fire.nominal}",
            }
            amqp.send_task_message(producer, fire.task, message, headers=headers, **route)
