"""The public operations on schedules: declare and sync, change at run time, describe, back up."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import msgspec

from crawjud_tasks._state import app_state
from crawjud_tasks.errors import ScheduleError
from crawjud_tasks.schedules._builtin import builtin_schedules
from crawjud_tasks.schedules._fire import CLAIM, claim_args, new_fire, publish_fires
from crawjud_tasks.schedules._per_app import SchedulesState
from crawjud_tasks.schedules._spec import Schedule, StoredSchedule, check_stored
from crawjud_tasks.schedules._store import ScheduleInfo, ScheduleStore

if TYPE_CHECKING:
    from celery import Celery

__all__ = [
    "SyncReport",
    "add",
    "declare",
    "describe",
    "export_schedules",
    "import_schedules",
    "list_schedules",
    "pause",
    "remove",
    "resume",
    "sync",
    "sync_declared",
    "trigger",
    "update",
]

_LOG = logging.getLogger("crawjud_tasks.schedules")
#: A triggered fire while the last still runs: ``buffer_one`` keeps it (unless one is kept
#: already), ``skip`` counts it skipped. KEYS state, buffered; ARGV nominal, id, overlap.
_KEEP = """
if ARGV[3] ~= 'buffer_one' or redis.call('hexists', KEYS[1], 'pending') == 1 then
  redis.call('hincrby', KEYS[1], 'skipped', 1)
  return 0
end
redis.call('hset', KEYS[1], 'pending', ARGV[1])
redis.call('zadd', KEYS[2], ARGV[1], ARGV[2])
return 1
"""
#: The largest export accepted by :func:`import_schedules`.
MAX_IMPORT_BYTES = 16 * 1024 * 1024
_EXPORT = msgspec.json.Encoder()
_IMPORT = msgspec.json.Decoder(list[StoredSchedule])


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class SyncReport:
    """What :func:`sync` (or :func:`import_schedules`) changed, by schedule id."""

    added: list[str]
    updated: list[str]
    unchanged: list[str]
    removed: list[str]
    #: True when declared schedules were missing from Redis (it was flushed, or this is the
    #: first start) and were stored again.
    restored: bool = False


def declare(app: Celery, *schedules: Schedule) -> None:
    """Declare schedules in code: beat syncs them into Redis at start (pruning the declared
    ones no longer declared, when ``schedules.prune`` is on). No Redis I/O here.

    Raises:
        ScheduleError: two schedules have one id.
    """
    state = app_state(app)
    with state.lock:
        declared = state.domain(SchedulesState).declared
        for schedule in schedules:
            if schedule.id in declared and declared[schedule.id] != schedule:
                msg = f"two declared schedules have the id {schedule.id!r}; give each its own"
                raise ScheduleError(msg)
            declared[schedule.id] = schedule


def declared_schedules(app: Celery) -> list[Schedule]:
    """The schedules declared on ``app``, plus the built-ins switched on in its settings."""
    state = app_state(app)
    with state.lock:
        own = list(state.domain(SchedulesState).declared.values())
    return [*builtin_schedules(state.settings), *own]


def sync_declared(app: Celery) -> SyncReport:
    """Reconcile Redis with the declared schedules (at beat start); log what changed."""
    report = sync(app, declared_schedules(app), prune=app_state(app).settings.schedules.prune)
    if report.restored:
        _LOG.warning(
            "beat: restored %d declared schedule(s) missing from Redis (flushed?): %s",
            len(report.added),
            ", ".join(report.added),
        )
    elif report.added or report.updated or report.removed:
        _LOG.info(
            "beat: schedules synced: added %s, updated %s, removed %s",
            report.added,
            report.updated,
            report.removed,
        )
    return report


def sync(app: Celery, schedules: Iterable[Schedule], *, prune: bool = False) -> SyncReport:
    """Store the declared ``schedules``: add the new, update the changed (keeping their
    counters, last runs and pause state), and with ``prune`` remove the declared ones that are
    no longer in the list (schedules added at run time are never pruned).

    Raises:
        ScheduleError: a schedule is invalid, or two have one id; nothing is stored then.
        BrokerUnavailableError: Redis did not answer.
    """
    specs: dict[str, StoredSchedule] = {}
    for schedule in schedules:
        if schedule.id in specs:
            msg = f"two schedules given to sync have the id {schedule.id!r}; give each its own"
            raise ScheduleError(msg)
        specs[schedule.id] = schedule.stored(origin="declared")
    return _apply(app, specs, prune=prune, prune_origin="declared")


def _apply(
    app: Celery, specs: dict[str, StoredSchedule], *, prune: bool, prune_origin: str | None
) -> SyncReport:
    store = ScheduleStore(app)
    existing = {spec.id: spec for spec in store.all()}
    changes: dict[str, list[str]] = {"added": [], "updated": [], "unchanged": []}
    for spec in specs.values():
        changes[store.put(spec, mode="upsert")].append(spec.id)
    removed = [
        spec.id
        for spec in existing.values()
        if prune and spec.id not in specs and prune_origin in (None, spec.origin)
    ]
    for schedule_id in removed:
        store.remove(schedule_id)
    restored = bool(specs) and not any(spec_id in existing for spec_id in specs)
    return SyncReport(
        added=changes["added"],
        updated=changes["updated"],
        unchanged=changes["unchanged"],
        removed=removed,
        restored=restored and bool(changes["added"]) and not existing,
    )


def add(app: Celery, schedule: Schedule) -> None:
    """Add a schedule at run time (beat fires it from its next fire time).

    Raises:
        ScheduleError: the id exists already, or a field is invalid.
    """
    ScheduleStore(app).put(schedule.stored(), mode="add")


def update(app: Celery, schedule: Schedule) -> None:
    """Replace the definition of an existing schedule; its counters and pause state are kept.

    Raises:
        UnknownScheduleError: no schedule has this id.
    """
    ScheduleStore(app).put(schedule.stored(), mode="update")


def pause(app: Celery, schedule_id: str, note: str = "") -> None:
    """Stop firing ``schedule_id`` (within one beat tick) until :func:`resume`."""
    ScheduleStore(app).pause(schedule_id, note)


def resume(app: Celery, schedule_id: str) -> None:
    """Fire ``schedule_id`` again from its next fire time; the failure count starts over."""
    ScheduleStore(app).resume(schedule_id)


def remove(app: Celery, schedule_id: str) -> None:
    """Delete ``schedule_id`` with its state and last runs."""
    ScheduleStore(app).remove(schedule_id)


def describe(app: Celery, schedule_id: str, *, upcoming: int = 5) -> ScheduleInfo:
    """The schedule, its pause state, next fire times, last runs and counters."""
    return ScheduleStore(app).describe(schedule_id, upcoming=upcoming)


def list_schedules(app: Celery) -> list[StoredSchedule]:
    """Every stored schedule, by id."""
    return ScheduleStore(app).all()


def trigger(app: Celery, schedule_id: str) -> str | None:
    """Run ``schedule_id`` now, once, outside its timing; its fire time is now.

    The overlap policy applies as to a timed fire: while a run of the schedule still holds its
    run lease, ``skip`` sends nothing (counted as skipped), ``buffer_one`` keeps this fire and
    beat sends it when the run ends (unless one is kept already: then it is skipped), and
    ``allow`` sends it at once. A paused schedule is triggered too (an operator asked for this
    run) and stays paused; its timed fires do not resume.

    Returns:
        The task id of the fire (sent, or kept by ``buffer_one``), or None when it was skipped.

    Raises:
        UnknownScheduleError: no schedule has this id.
        BrokerUnavailableError: Redis or the broker did not answer.
    """
    store = ScheduleStore(app)
    spec = store.get(schedule_id)
    fire = new_fire(store, spec, store.clock(), field="", expected=None)
    keys, argv = claim_args(store, fire, "")
    with store.state.redis_errors():
        answer = bytes(store.client.eval(CLAIM, len(keys), *keys, *argv)).decode()  # pyright: ignore[reportUnknownMemberType, reportUnknownArgumentType]  (redis-py leaves eval untyped)
        if answer == "busy":
            kept: Any = store.client.eval(  # pyright: ignore[reportUnknownMemberType]  (redis-py leaves eval untyped)
                _KEEP,
                2,
                keys[1],
                store.keys.schedule_buffered(),
                fire.nominal,
                spec.id,
                spec.overlap,
            )
            return fire.task_id if kept else None
    if answer not in ("ok", "retaken"):  # "sent", "held": this very fire went already
        return fire.task_id
    publish_fires(store, [fire])
    lease_ms = round(store.settings.schedules.run_lease_ttl * 1000)
    with store.state.redis_errors(), store.pipeline() as pipe:
        pipe.set(store.keys.schedule_running(spec.id), fire.task_id, px=lease_ms)
        pipe.hincrby(store.keys.schedule_state(spec.id), "fired", 1)
        pipe.hset(
            store.keys.schedule_state(spec.id),
            mapping={"last_task": fire.task_id, "last_fire": fire.nominal},
        )
        pipe.set(store.keys.schedule_fire(spec.id, fire.nominal), "sent:manual", keepttl=True)
        pipe.execute()
    return fire.task_id


def export_schedules(app: Celery) -> str:
    """Every stored schedule as JSON (a list), for backups and :func:`import_schedules`."""
    return _EXPORT.encode(ScheduleStore(app).all()).decode()


def import_schedules(app: Celery, text: str | bytes, *, replace: bool = False) -> SyncReport:
    """Store the schedules of an export: every one is checked before any is stored.

    Args:
        app: The app whose Redis keeps the schedules.
        text: JSON made by :func:`export_schedules`.
        replace: Also remove stored schedules that the export does not hold.

    Raises:
        ScheduleError: the text is not an export, or a schedule in it is invalid.
    """
    if len(text) > MAX_IMPORT_BYTES:
        msg = f"an export is at most {MAX_IMPORT_BYTES} bytes, got {len(text)}"
        raise ScheduleError(msg)
    try:
        specs: list[StoredSchedule] = _IMPORT.decode(text)
    except msgspec.ValidationError as exc:
        msg = f"this is not a schedules export: {exc}"
        raise ScheduleError(msg) from None
    except msgspec.DecodeError as exc:
        msg = f"this is not a schedules export (JSON list of schedules): {exc}"
        raise ScheduleError(msg) from None
    by_id: dict[str, StoredSchedule] = {}
    for spec in specs:
        if spec.id in by_id:
            msg = f"the export holds the id {spec.id!r} twice"
            raise ScheduleError(msg)
        by_id[spec.id] = check_stored(spec)
    return _apply(app, by_id, prune=replace, prune_origin=None)
