"""On the worker: the end of a scheduled run frees its run lease and is recorded with its outcome.

Only messages that carry the schedule header pay for this (one Lua call after the run); other
tasks see one attribute lookup, from the library's task class hook (no Celery signal). After
``pause_after_failures`` failed runs in a row the schedule is paused and an ``alert`` mail goes
to ``schedules.alert_to`` (once per pause).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
import zoneinfo
from typing import TYPE_CHECKING, Any

from crawjud_tasks._state import app_state, has_state
from crawjud_tasks._tasks import ENDED
from crawjud_tasks.mail.contracts import EmailMessage, send_email
from crawjud_tasks.schedules._fire import SCHEDULE_HEADER
from crawjud_tasks.schedules._store import MAX_RUNS, ScheduleStore

if TYPE_CHECKING:
    from celery import Celery

__all__ = ["connect_outcomes", "send_pause_alert"]

_LOG = logging.getLogger("crawjud_tasks.schedules")
_MAX_ERROR = 300

RECORD = """
if redis.call('get', KEYS[3]) == ARGV[1] then redis.call('del', KEYS[3]) end
redis.call('lpush', KEYS[2], ARGV[3])
redis.call('ltrim', KEYS[2], 0, tonumber(ARGV[4]) - 1)
if ARGV[2] == 'succeeded' then
  redis.call('hincrby', KEYS[1], 'succeeded', 1)
  redis.call('hset', KEYS[1], 'failures', 0)
  return 0
end
redis.call('hincrby', KEYS[1], 'failed', 1)
local failures = redis.call('hincrby', KEYS[1], 'failures', 1)
local limit = tonumber(ARGV[5])
if limit > 0 and failures >= limit and redis.call('hget', KEYS[1], 'paused') ~= '1' then
  redis.call('hset', KEYS[1], 'paused', '1', 'note', ARGV[6], 'paused_at', ARGV[8])
  redis.call('zrem', KEYS[4], ARGV[7])
  redis.call('zrem', KEYS[5], ARGV[7])
  return failures
end
return 0
"""


def connect_outcomes() -> None:
    """Listen to the ends of CrawJUD tasks (once per process): a scheduled fire is recorded."""
    if _after_run not in ENDED:
        ENDED.append(_after_run)


def _after_run(task: Any, task_id: str, state: str, retval: Any) -> None:
    fire = getattr(getattr(task, "request", None), SCHEDULE_HEADER, None)
    if fire is None or state not in ("SUCCESS", "FAILURE"):
        return
    app: Celery = task.app
    if not has_state(app):
        return
    try:
        _record(app, str(fire), task_id, state, retval)
    except Exception:
        _LOG.exception("schedules: the end of run %s (%s) was not recorded", task_id, fire)


def _record(app: Celery, fire: str, task_id: str, state: str, retval: Any) -> None:
    schedule_id, _, nominal = fire.rpartition("@")
    outcome = "succeeded" if state == "SUCCESS" else "failed"
    now = round(time.time() * 1000)
    record: dict[str, Any] = {
        "task_id": task_id,
        "nominal": int(nominal),
        "outcome": outcome,
        "finished_at": now,
    }
    if outcome == "failed" and isinstance(retval, BaseException):
        record["error"] = f"{type(retval).__name__}: {retval}"[:_MAX_ERROR]
    store = ScheduleStore(app)
    keys = store.keys
    limit = _pause_limit(store, schedule_id)
    note = f"paused after {limit} failed runs in a row"
    paused: Any = store.client.eval(  # pyright: ignore[reportUnknownMemberType]  (redis-py leaves eval untyped)
        RECORD,
        5,
        keys.schedule_state(schedule_id),
        keys.schedule_runs(schedule_id),
        keys.schedule_running(schedule_id),
        keys.schedule_due(),
        keys.schedule_buffered(),
        task_id,
        outcome,
        json.dumps(record),
        MAX_RUNS,
        limit,
        note,
        schedule_id,
        now,
    )
    if paused:
        _LOG.error("schedules: %s %s (last error: %s)", schedule_id, note, record.get("error"))
        send_pause_alert(app, schedule_id, int(paused), record.get("error"), now)


def _pause_limit(store: ScheduleStore, schedule_id: str) -> int:
    try:
        spec = store.get(schedule_id)
    except LookupError:
        return 0
    return spec.pause_after_failures or 0


def send_pause_alert(
    app: Celery, schedule_id: str, failures: int, error: str | None, paused_ms: int
) -> None:
    """Dispatch the ``alert`` mail saying that ``schedule_id`` was paused (if anyone gets it)."""
    settings = app_state(app).settings
    recipients = list(settings.schedules.alert_to)
    if not recipients:
        return
    moment = dt.datetime.fromtimestamp(paused_ms / 1000, zoneinfo.ZoneInfo(settings.timezone))
    details = [f"{failures} failed runs in a row", "resume: crawjud-tasks schedules resume ID"]
    if error:
        details.insert(1, f"last error: {error}")
    message = EmailMessage(
        to=recipients,
        template="alert",
        context={
            "severity": "critical",
            "title": f"Schedule {schedule_id} paused after {failures} failures",
            "details": details,
            "raised_at": moment.strftime("%d/%m/%Y %H:%M"),
        },
        idempotency_key=f"schedule-paused:{schedule_id}:{paused_ms}",
    )
    try:
        send_email.using(app).s(message).apply_async()
    except Exception:
        _LOG.exception("schedules: the alert mail about %s was not sent", schedule_id)
