"""Running health checks: each in its own daemon thread with its own time limit, the whole
report within ``maintenance.health_timeout`` even when a dependency hangs; then the alert.

The status is the worst of the checks'. When it is worse than the status the previous report
recorded in Redis, one ``alert`` mail goes to ``maintenance.alert_to`` through the mail
contract, at most once per status per ``alert_cooldown`` (a ``SET NX EX`` in Redis decides).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from crawjud_tasks._state import app_state
from crawjud_tasks.errors import CrawjudTasksError
from crawjud_tasks.mail.contracts import EmailMessage, send_email
from crawjud_tasks.maintenance import _checks
from crawjud_tasks.maintenance._checks import Check, Outcome, short_client
from crawjud_tasks.maintenance._paths import backup_dir
from crawjud_tasks.maintenance.contracts import CheckResult, HealthReport, HealthStatus

if TYPE_CHECKING:
    import redis
    from celery import Celery

    from crawjud_tasks._keys import Keys
    from crawjud_tasks._settings import Settings

__all__ = ["RANK", "alert_if_worse", "run_checks", "worst"]

_LOG = logging.getLogger("crawjud_tasks.maintenance")
RANK: dict[HealthStatus, int] = {"ok": 0, "degraded": 1, "down": 2}
#: Seconds kept for the alert's Redis commands, out of the report's time.
_ALERT_SHARE = 1.0


def worst(statuses: list[HealthStatus]) -> HealthStatus:
    """The worst of ``statuses`` (``ok`` for none)."""
    found: HealthStatus = "ok"
    for status in statuses:
        if RANK[status] > RANK[found]:
            found = status
    return found


class _Slot:
    def __init__(self) -> None:
        self.done = threading.Event()
        self.outcome: Outcome = ("down", "did not answer")
        self.seconds = 0.0


def _run(check: Check, limit: float, slot: _Slot) -> None:
    started = time.perf_counter()
    try:
        slot.outcome = check(limit)
    except Exception as exc:  # a check never raises: its failure is its outcome
        text = str(exc).splitlines()[0][:200] if str(exc) else ""
        slot.outcome = ("down", f"{type(exc).__name__}: {text}" if text else type(exc).__name__)
    slot.seconds = time.perf_counter() - started
    slot.done.set()


def run_checks(checks: list[tuple[str, float, Check]], total: float) -> list[CheckResult]:
    """Run every check at once; wait for each at most its limit, and for all at most ``total``.

    A check still running at its limit is reported ``down`` ("timed out"); its thread is a
    daemon and is left to finish on its own.
    """
    started = time.monotonic()
    slots: list[tuple[str, float, _Slot]] = []
    for name, limit, check in checks:
        slot = _Slot()
        thread = threading.Thread(
            target=_run, args=(check, limit, slot), name=f"crawjud-health:{name}", daemon=True
        )
        thread.start()
        slots.append((name, limit, slot))
    results: list[CheckResult] = []
    for name, limit, slot in slots:
        wait = min(started + limit, started + total) - time.monotonic()
        if slot.done.wait(max(0.0, wait)):
            status, detail = slot.outcome
            results.append(
                CheckResult(name=name, status=status, detail=detail, seconds=round(slot.seconds, 3))
            )
        else:
            waited = round(time.monotonic() - started, 3)
            detail = f"timed out after {min(limit, total):g} s"
            results.append(CheckResult(name=name, status="down", detail=detail, seconds=waited))
    return results


def alert_if_worse(
    app: Celery,
    settings: Settings,
    client: redis.Redis,
    keys: Keys,
    report: HealthReport,
) -> bool:
    """Record the report's status; dispatch the ``alert`` mail if it worsened. True if sent.

    Args:
        app: The app whose mail contract sends the alert.
        settings: Its settings (recipients, cool-down).
        client: The library's Redis.
        keys: The app's key table (last status, cool-downs).
        report: The report just made.
    """
    section = settings.maintenance
    quick = short_client(client, _ALERT_SHARE)
    try:
        previous: Any = quick.getset(keys.health_status(), report.status)
        before: HealthStatus = "ok"
        if previous is not None and previous.decode() in RANK:
            before = previous.decode()
        if RANK[report.status] <= RANK[before] or not section.alert_to:
            return False
        fresh = quick.set(
            keys.health_alert(report.status), "1", nx=True, ex=max(1, round(section.alert_cooldown))
        )
        if not fresh:
            return False
    except Exception as exc:  # Redis may be the very thing that is down
        _LOG.warning("health status not recorded, no alert sent: %s", exc)
        return False
    finally:
        quick.close()
    failing = [check for check in report.checks if check.status != "ok"]
    raised = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    message = EmailMessage(
        to=list(section.alert_to),
        template="alert",
        locale="en",
        context={
            "severity": "critical" if report.status == "down" else "warning",
            "title": f"crawjud-tasks ({settings.namespace}) is {report.status}",
            "details": [f"{check.name}: {check.status}, {check.detail}" for check in failing],
            "raised_at": raised.isoformat(),
        },
        idempotency_key=f"health:{report.status}:{int(raised.timestamp())}",
    )
    try:
        send_email.using(app).s(message).apply_async()
    except Exception as exc:
        _LOG.warning("the health alert was not dispatched: %s", exc)
        return False
    return True


#: Each check's own time limit, in seconds (all run at once).
LIMITS: dict[str, float] = {
    "redis": 2.0,
    "queues": 2.0,
    "consumers": 3.0,
    "beat": 2.0,
    "smtp": 3.0,
    "disk": 1.0,
    "backup": 1.0,
}
#: A message that waited this long at the head of its queue makes the report degraded.
STUCK_MESSAGE = 900.0


def health_check(app: Celery) -> HealthReport:
    """Check the deployment (see "Maintenance"); the report comes within
    ``maintenance.health_timeout`` seconds whatever hangs, and an ``alert`` mail is dispatched
    when the status worsened."""
    started = time.monotonic()
    state = app_state(app)
    settings, keys = state.settings, state.keys
    section = settings.maintenance
    try:
        library = state.redis
    except CrawjudTasksError as exc:  # no Redis that redis-py opens: nothing to check but files
        return _without_redis(settings, str(exc), started)
    broker = state.link.broker or library
    queues = list(dict.fromkeys(settings.queue_names.values()))
    conf: Any = app.conf
    lock_key = str(conf.get("redbeat_lock_key") or keys.redbeat_lock())
    checks: list[tuple[str, float, Check]] = [
        ("redis", LIMITS["redis"], _checks.check_redis(library)),
        (
            "queues",
            LIMITS["queues"],
            _checks.check_oldest_message(broker, queues, keys.health_oldest(), STUCK_MESSAGE),
        ),
        ("consumers", LIMITS["consumers"], _checks.check_consumers(app, queues)),
        ("beat", LIMITS["beat"], _checks.check_beat(broker, lock_key)),
        ("smtp", LIMITS["smtp"], _checks.check_smtp(settings)),
        (
            "disk",
            LIMITS["disk"],
            _checks.check_disk(settings.resolved_data_dir, section.disk_min_free),
        ),
        (
            "backup",
            LIMITS["backup"],
            _checks.check_backup_age(backup_dir(settings), section.backup_max_age),
        ),
    ]
    budget = section.health_timeout - _ALERT_SHARE * 2
    results = run_checks(checks, max(0.5, budget))
    report = HealthReport(
        status=worst([result.status for result in results]),
        checks=results,
        seconds=round(time.monotonic() - started, 3),
    )
    done = threading.Event()
    sent: list[bool] = []

    def alert() -> None:
        try:
            sent.append(alert_if_worse(app, settings, library, keys, report))
        except Exception:  # never a thread that dies loudly: the report is what matters
            _LOG.exception("the health alert failed")
        finally:
            done.set()

    threading.Thread(target=alert, name="crawjud-health:alert", daemon=True).start()
    done.wait(max(0.0, started + section.health_timeout - 0.2 - time.monotonic()))
    return dataclasses.replace(
        report, alerted=bool(sent and sent[0]), seconds=round(time.monotonic() - started, 3)
    )


def _without_redis(settings: Settings, reason: str, started: float) -> HealthReport:
    """The report when the app has no Redis the library can open: Redis is down, files checked."""
    section = settings.maintenance
    checks: list[tuple[str, float, Check]] = [
        ("redis", LIMITS["redis"], lambda _: ("down", reason)),
        ("smtp", LIMITS["smtp"], _checks.check_smtp(settings)),
        (
            "disk",
            LIMITS["disk"],
            _checks.check_disk(settings.resolved_data_dir, section.disk_min_free),
        ),
        (
            "backup",
            LIMITS["backup"],
            _checks.check_backup_age(backup_dir(settings), section.backup_max_age),
        ),
    ]
    results = run_checks(checks, section.health_timeout)
    return HealthReport(
        status=worst([result.status for result in results]),
        checks=results,
        seconds=round(time.monotonic() - started, 3),
    )
