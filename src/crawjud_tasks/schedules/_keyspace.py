"""The Redis keys of the schedules domain (moved into ``_keys.py`` when it lands)."""

from __future__ import annotations

__all__ = ["ScheduleKeys"]


class ScheduleKeys:
    """Every Redis key the schedules domain writes, under one prefix (``crawjud:``)."""

    __slots__ = ("prefix",)

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def schedule_definitions(self) -> str:
        """Hash: schedule id -> its JSON definition. No TTL."""
        return f"{self.prefix}schedules:defs"

    def schedule_due(self) -> str:
        """Sorted set: schedule id -> ms of its next dispatch (paused ones left out). No TTL."""
        return f"{self.prefix}schedules:due"

    def schedule_buffered(self) -> str:
        """Sorted set: ids with a fire kept waiting by ``buffer_one``. No TTL."""
        return f"{self.prefix}schedules:buffered"

    def schedule_state(self, schedule_id: str) -> str:
        """Hash: next fire, pause, counters, consecutive failures of one schedule. No TTL."""
        return f"{self.prefix}schedules:state:{schedule_id}"

    def schedule_runs(self, schedule_id: str) -> str:
        """List: the last runs of one schedule with their outcome (bounded). No TTL."""
        return f"{self.prefix}schedules:runs:{schedule_id}"

    def schedule_fire(self, schedule_id: str, nominal_ms: int) -> str:
        """String: the claim of one fire (schedule, nominal time). TTL: the catch-up window."""
        return f"{self.prefix}schedules:fire:{schedule_id}:{nominal_ms}"

    def schedule_running(self, schedule_id: str) -> str:
        """String: the task id of the schedule's fire still running. TTL: run lease TTL."""
        return f"{self.prefix}schedules:running:{schedule_id}"

    def schedule_leader(self) -> str:
        """String: the token of the beat that leads. TTL: ``schedules.lock_timeout``."""
        return f"{self.prefix}schedules:leader"
