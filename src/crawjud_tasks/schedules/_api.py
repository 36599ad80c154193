"""The public operations on schedules: declare and sync, change at run time, describe, back up."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

import msgspec

from crawjud_tasks._state import app_state
from crawjud_tasks.errors import ScheduleError
from crawjud_tasks.schedules._builtin import builtin_schedules
from crawjud_tasks.schedules._fire import publish
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


def trigger(app: Celery, schedule_id: str) -> str:
    """Run ``schedule_id`` now, once, outside its timing (even when paused, whatever the
    overlap policy). Its fire time is now; returns the task id.

    Raises:
        UnknownScheduleError: no schedule has this id.
    """
    store = ScheduleStore(app)
    spec = store.get(schedule_id)
    nominal = store.clock()
    with store.state.redis_errors():
        # The claim of a manual fire: a record of it (no leader, no overlap check).
        store.client.set(store.keys.schedule_fire(spec.id, nominal), "manual", px=86_400_000)
    task_id, sent = publish(store, spec, nominal)
    if sent:
        lease_ms = round(store.settings.schedules.run_lease_ttl * 1000)
        with store.state.redis_errors(), store.pipeline() as pipe:
            pipe.set(store.keys.schedule_running(spec.id), task_id, px=lease_ms)
            pipe.hincrby(store.keys.schedule_state(spec.id), "fired", 1)
            pipe.hset(
                store.keys.schedule_state(spec.id),
                mapping={"last_task": task_id, "last_fire": nominal},
            )
            pipe.execute()
    return task_id


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
