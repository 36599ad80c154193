"""The library's built-in schedules, each off until named in ``schedules.builtins``.

Each built-in fires a contract of the library. The product's jobs (automatic reports, external
sync, health check, cache cleanup) join this table as their contracts land in the maintenance
and monitoring domains; until then naming them is refused with a clear error.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from crawjud_tasks.errors import SettingsError

if TYPE_CHECKING:
    from crawjud_tasks._settings import Settings
    from crawjud_tasks.schedules._spec import Schedule

__all__ = ["BUILTINS", "PLANNED", "builtin_schedules"]

#: Built-in schedule name -> a function building it from the settings.
BUILTINS: dict[str, Callable[[Settings], Schedule]] = {}
#: Built-ins whose contracts arrive with another domain (name -> what it needs).
PLANNED = {
    "periodic_report": (
        "a monitoring contract that mails the last period's runs and task stats with the "
        "'periodic_report' template"
    ),
    "external_sync": "the maintenance contract sync(name) and the host's sync job names",
    "health_check": "the maintenance contract health_check()",
    "cache_cleanup": "the maintenance contracts clean_defaults() and redis_hygiene()",
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
        chosen.append(build(settings))
    return chosen
