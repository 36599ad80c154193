"""The library's built-in schedules, each off until named in ``schedules.builtins``.

Each built-in fires contracts of another domain, reached through its ``contracts`` module:

- ``health_check``: ``maintenance.health_check()`` every 5 minutes;
- ``cache_cleanup``: ``maintenance.clean_defaults()`` daily at 03:30 and
  ``maintenance.redis_hygiene()`` hourly at :15 (in the ``timezone`` setting);
- ``periodic_report``: ``monitoring.periodic_report()`` daily at 06:00 (to
  ``monitoring.report_to``, which must not be empty);
- ``external_sync``: ``maintenance.sync(name)`` for each job of ``schedules.sync_jobs``, at
  its cron (hourly at :00 by default).

A host that wants other times declares its own schedules of the same contracts instead.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from crawjud_tasks.errors import ScheduleError, SettingsError
from crawjud_tasks.maintenance.contracts import clean_defaults, health_check, redis_hygiene, sync
from crawjud_tasks.monitoring.contracts import periodic_report
from crawjud_tasks.schedules._spec import Schedule

if TYPE_CHECKING:
    from crawjud_tasks._settings import Settings

__all__ = ["BUILTINS", "builtin_schedules"]


def _health_check(settings: Settings) -> list[Schedule]:
    del settings
    return [
        Schedule(
            id="builtin.health_check",
            task=health_check.s(),
            every="5m",
            description="built-in: the deployment's health check",
        )
    ]


def _cache_cleanup(settings: Settings) -> list[Schedule]:
    return [
        Schedule(
            id="builtin.cache_cleanup.files",
            task=clean_defaults.s(),
            cron="30 3 * * *",
            timezone=settings.timezone,
            description="built-in: clean the library's folders (logs, old reports, outbox)",
        ),
        Schedule(
            id="builtin.cache_cleanup.redis",
            task=redis_hygiene.s(),
            cron="15 * * * *",
            timezone=settings.timezone,
            description="built-in: one time-budgeted hygiene pass over the library's Redis keys",
        ),
    ]


def _periodic_report(settings: Settings) -> list[Schedule]:
    if not settings.monitoring.report_to:
        msg = (
            "setting 'schedules.builtins': 'periodic_report' mails 'monitoring.report_to', "
            "which is empty; give it the recipients"
        )
        raise SettingsError(msg)
    return [
        Schedule(
            id="builtin.periodic_report",
            task=periodic_report.s(),
            cron="0 6 * * *",
            timezone=settings.timezone,
            description="built-in: mail the last period's task stats to monitoring.report_to",
        )
    ]


def _external_sync(settings: Settings) -> list[Schedule]:
    entries = settings.schedules.sync_jobs
    if not entries:
        msg = (
            "setting 'schedules.builtins': 'external_sync' runs the jobs of "
            "'schedules.sync_jobs', which is empty; list them as 'name' or 'name=<cron>'"
        )
        raise SettingsError(msg)
    chosen: list[Schedule] = []
    for entry in entries:
        name, _, cron = (part.strip() for part in entry.partition("="))
        if not name or not all(c.isalnum() or c in "_-." for c in name):
            msg = (
                f"setting 'schedules.sync_jobs': {entry!r} is not 'name' or 'name=<cron>' "
                "(a name is letters, digits, '_', '-' and '.')"
            )
            raise SettingsError(msg)
        try:
            chosen.append(
                Schedule(
                    id=f"builtin.external_sync.{name}",
                    task=sync.s(name),
                    cron=cron or "0 * * * *",
                    timezone=settings.timezone,
                    description=f"built-in: run the host's sync job {name!r}",
                )
            )
        except ScheduleError as exc:
            msg = f"setting 'schedules.sync_jobs': {entry!r}: {exc}"
            raise SettingsError(msg) from None
    if len({s.id for s in chosen}) != len(chosen):
        msg = "setting 'schedules.sync_jobs' names one job twice; list each job once"
        raise SettingsError(msg)
    return chosen


#: Built-in name -> a function building its schedules from the settings.
BUILTINS: dict[str, Callable[[Settings], list[Schedule]]] = {
    "cache_cleanup": _cache_cleanup,
    "external_sync": _external_sync,
    "health_check": _health_check,
    "periodic_report": _periodic_report,
}


def builtin_schedules(settings: Settings) -> list[Schedule]:
    """The built-in schedules switched on in ``settings``.

    Raises:
        SettingsError: a name in ``schedules.builtins`` is unknown, or a built-in's settings
            are missing or invalid.
    """
    chosen: list[Schedule] = []
    for name in settings.schedules.builtins:
        build = BUILTINS.get(name)
        if build is None:
            known = ", ".join(repr(n) for n in sorted(BUILTINS))
            msg = f"setting 'schedules.builtins': unknown built-in {name!r}; known: {known}"
            raise SettingsError(msg)
        chosen.extend(build(settings))
    return chosen
