"""Schedules: typed, changeable at run time, highly available, never firing twice.

Declare schedules in code (:func:`declare`, synced at beat start, or :func:`sync` at deploy),
change them at run time (:func:`add`, :func:`update`, :func:`pause`, :func:`resume`,
:func:`trigger`, :func:`remove`), read them (:func:`describe`, :func:`list_schedules`) and back
them up (:func:`export_schedules`, :func:`import_schedules`). ``crawjud-tasks beat`` fires them
with :class:`ScheduleScheduler`. See the "Schedules" guide.
"""

from crawjud_tasks.schedules._api import (
    MAX_IMPORT_BYTES,
    SyncReport,
    add,
    declare,
    describe,
    export_schedules,
    import_schedules,
    list_schedules,
    pause,
    remove,
    resume,
    sync,
    trigger,
    update,
)
from crawjud_tasks.schedules._scheduler import ScheduleScheduler
from crawjud_tasks.schedules._spec import Overlap, Schedule, StoredSchedule, parse_every
from crawjud_tasks.schedules._store import RunRecord, ScheduleInfo

__all__ = [
    "MAX_IMPORT_BYTES",
    "Overlap",
    "RunRecord",
    "Schedule",
    "ScheduleInfo",
    "ScheduleScheduler",
    "StoredSchedule",
    "SyncReport",
    "add",
    "declare",
    "describe",
    "export_schedules",
    "import_schedules",
    "list_schedules",
    "parse_every",
    "pause",
    "remove",
    "resume",
    "sync",
    "trigger",
    "update",
]
