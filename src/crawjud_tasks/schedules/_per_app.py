"""What the schedules domain keeps per app: the schedules declared in code
(``app_state(app).domain(SchedulesState)``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from crawjud_tasks._state import AppState
    from crawjud_tasks.schedules._spec import Schedule

__all__ = ["SchedulesState"]


class SchedulesState:
    """The schedules declared on one app; changed under the app state's lock."""

    __slots__ = ("declared", "state")

    def __init__(self, state: AppState) -> None:
        self.state = state
        #: Schedules declared with ``declare``, by id; beat syncs them into Redis at start.
        self.declared: dict[str, Schedule] = {}
