"""The library's built-in schedules, each off until named in ``schedules.builtins``.

Each built-in fires contracts of another domain, reached through its ``contracts`` module:

- ``health_check``: ``maintenance.health_check()`` every 5 minutes;
- ``cache_cleanup``: ``maintenance.clean_defaults()`` daily at 03:30 and
  ``maintenance.redis_hygiene()`` hourly at :15 (in the ``timezone`` setting).

A host that wants other times declares its own schedules of the same contracts instead. The
product's other jobs (automatic reports, external sync) join this table when their domains
offer what they need (:data:`PLANNED`); until then naming them is refused with a clear error.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from crawjud_tasks.errors import SettingsError
from crawjud_tasks.maintenance.contracts import clean_defaults, health_check, redis_hygiene
from crawjud_tasks.schedules._spec import Schedule

if TYPE_CHECKING:
    from crawjud_tasks._settings import Settings

__all__ = ["BUILTINS", "PLANNED", "builtin_schedules"]


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


#: Built-in name -> a function building its schedules from the settings.
BUILTINS: dict[str, Callable[[Settings], list[Schedule]]] = {
    "cache_cleanup": _cache_cleanup,
    "health_check": _health_check,
}
#: Built-ins that wait for another domain (name -> what they need).
PLANNED = {
    "periodic_report": (
        "a monitoring contract that mails the last period's runs and task stats with the "
        "'periodic_report' template"
    ),
    "external_sync": (
        "the host's sync job names in the maintenance contracts module (or a setting), to "
        "schedule maintenance.sync(name) for each"
    ),
}


def builtin_schedules(settings: Settings) -> list[Schedule]:
    """The built-in schedules switched on in ``settings``.

    Raises:
        SettingsError: a name in ``schedules.builtins`` is unknown, or not available yet.
    """
    chosen: list[Schedule] = []
    for name in settings.schedules.builtins:
        build = BUILTINS.get(name)
        if build is None:
            if name in PLANNED:
                msg = (
                    f"setting 'schedules.builtins': {name!r} needs {PLANNED[name]}, which this "
                    "version does not have yet"
                )
            else:
                known = ", ".join(repr(n) for n in sorted({*BUILTINS, *PLANNED}))
                msg = f"setting 'schedules.builtins': unknown built-in {name!r}; known: {known}"
            raise SettingsError(msg)
        chosen.extend(build(settings))
    return chosen
