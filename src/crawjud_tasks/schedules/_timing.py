"""When a schedule fires: cron expressions read in a time zone, fixed intervals, and DST.

Fire times are *nominal* instants, in whole milliseconds since the epoch (UTC). Cron fields are
read in the schedule's zone, on the wall clock:

- a wall time that does not exist (the clock jumps forward over it) fires at the first instant
  after the gap: ``30 2 * * *`` in a zone whose clocks go from 02:00 to 03:00 fires at 03:00;
- a wall time that happens twice (the clock falls back over it) fires once, at its first
  occurrence.

Both rules come from one mapping, wall time -> instant, that never goes backwards; a fire is
the first instant of that mapping after the previous one, so no instant fires twice.
An interval (``every``) counts from its anchor in real seconds and ignores the zone.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import zoneinfo
from collections.abc import Iterator
from typing import Any

from celery.schedules import crontab

from crawjud_tasks.errors import ScheduleError

__all__ = ["Timing", "jitter_ms", "parse_cron", "timing", "to_ms"]

_UTC = dt.timezone.utc
#: A cron expression that matches nothing for this many years is refused (``0 0 30 2 *``).
_HORIZON_DAYS = 366 * 8


def to_ms(moment: dt.datetime) -> int:
    """``moment`` (timezone-aware) in whole milliseconds since the epoch."""
    return round(moment.timestamp() * 1000)


def from_ms(ms: int) -> dt.datetime:
    """The UTC datetime of ``ms`` milliseconds since the epoch."""
    return dt.datetime.fromtimestamp(ms / 1000, _UTC)


def parse_cron(expression: str) -> crontab:
    """Celery's ``crontab`` of a five-field expression (minute hour day month weekday).

    Raises:
        ScheduleError: it is not five valid fields.
    """
    fields = expression.split()
    if len(fields) != 5:
        msg = (
            f"cron must be five fields 'minute hour day month weekday' like '0 6 * * *', "
            f"got {expression!r}"
        )
        raise ScheduleError(msg)
    minute, hour, day, month, weekday = fields
    try:
        return crontab(
            minute=minute, hour=hour, day_of_month=day, month_of_year=month, day_of_week=weekday
        )
    except (ValueError, TypeError, IndexError) as exc:
        msg = f"cron {expression!r} is not valid: {exc}"
        raise ScheduleError(msg) from None


def zone(name: str) -> zoneinfo.ZoneInfo:
    """The IANA zone ``name``.

    Raises:
        ScheduleError: there is no such zone.
    """
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        msg = f"timezone must be an IANA zone such as 'America/Sao_Paulo', got {name!r}"
        raise ScheduleError(msg) from None


def wall_to_instant(wall: dt.datetime, tz: dt.tzinfo) -> dt.datetime:
    """The instant of a naive wall time in ``tz``: a time in a gap becomes the first instant
    after the gap; an ambiguous time its first occurrence."""
    first = wall.replace(tzinfo=tz, fold=0)
    utc = first.astimezone(_UTC)
    if utc.astimezone(tz).replace(tzinfo=None) == wall:
        return utc
    # In a gap: the wall time does not exist. The gap ends where the offset changes; the first
    # instant after it is the fold=1 reading (the later offset) moved to the new wall clock.
    later = wall.replace(tzinfo=tz, fold=1).astimezone(_UTC)
    earlier = min(utc, later)
    # Walk to the transition: the first whole minute whose wall time is past ``wall``.
    probe = earlier.replace(second=0, microsecond=0)
    while probe.astimezone(tz).replace(tzinfo=None) < wall:
        probe += dt.timedelta(minutes=1)
    return probe


class Timing:
    """The fire times of one schedule: a cron expression in a zone, or a fixed interval."""

    __slots__ = ("anchor_ms", "cron", "every_ms", "tz")

    def __init__(
        self,
        *,
        cron: str | None = None,
        every_ms: int | None = None,
        timezone: str = "UTC",
        anchor_ms: int = 0,
    ) -> None:
        self.cron = parse_cron(cron) if cron is not None else None
        self.every_ms = every_ms
        self.tz = zone(timezone)
        self.anchor_ms = anchor_ms
        if self.cron is not None and self.next_after(0) is None:
            msg = f"cron {cron!r} never fires (no matching date in {_HORIZON_DAYS} days)"
            raise ScheduleError(msg)

    def next_after(self, after_ms: int) -> int | None:
        """The first fire time strictly after ``after_ms`` (None: there is none)."""
        if self.every_ms is not None:
            if after_ms < self.anchor_ms:
                return self.anchor_ms
            steps = (after_ms - self.anchor_ms) // self.every_ms + 1
            return self.anchor_ms + steps * self.every_ms
        for instant in self._cron_instants(from_ms(after_ms)):
            ms = to_ms(instant)
            if ms > after_ms:
                return ms
        return None

    def latest_at_or_before(self, now_ms: int, since_ms: int) -> tuple[int, int]:
        """The last fire time in ``[since_ms, now_ms]`` and how many fire times that range holds.

        ``since_ms`` must be a fire time at or before ``now_ms``.
        """
        if self.every_ms is not None:
            count = (now_ms - since_ms) // self.every_ms + 1
            return since_ms + (count - 1) * self.every_ms, count
        latest, count = since_ms, 1
        while True:
            following = self.next_after(latest)
            if following is None or following > now_ms:
                return latest, count
            latest, count = following, count + 1

    def _cron_instants(self, after: dt.datetime) -> Iterator[dt.datetime]:
        cron: Any = self.cron  # Celery's crontab: its field sets are untyped
        local = after.astimezone(self.tz).replace(tzinfo=None, second=0, microsecond=0)
        # Near an offset change, start an hour early: a wall time just before ``after`` may map
        # after it (a gap). Elsewhere (most calls, and always in UTC) start at ``after``.
        hour = dt.timedelta(hours=1)
        near_change = (after - hour).astimezone(self.tz).utcoffset() != (after + hour).astimezone(
            self.tz
        ).utcoffset()
        start = local - hour if near_change else local
        day = start.date()
        hours = sorted(cron.hour)
        minutes = sorted(cron.minute)
        first_day = True
        for _ in range(_HORIZON_DAYS):
            # Celery's crontab: day of week 0 is Sunday; Python's weekday() 0 is Monday.
            if (
                day.month in cron.month_of_year
                and day.day in cron.day_of_month
                and (day.weekday() + 1) % 7 in cron.day_of_week
            ):
                for hour_of_day in hours:
                    if first_day and hour_of_day < start.hour:
                        continue
                    for minute in minutes:
                        wall = dt.datetime(day.year, day.month, day.day, hour_of_day, minute)
                        if wall >= start:
                            yield wall_to_instant(wall, self.tz)
            first_day = False
            day += dt.timedelta(days=1)


@functools.lru_cache(maxsize=4096)
def timing(cron: str | None, every_ms: int | None, timezone: str, anchor_ms: int) -> Timing:
    """The :class:`Timing` of these fields, made once (parsing and checking a cron costs more
    than using it; beat asks for the same few timings on every tick)."""
    return Timing(cron=cron, every_ms=every_ms, timezone=timezone, anchor_ms=anchor_ms)


def jitter_ms(schedule_id: str, nominal_ms: int, jitter_ms: int) -> int:
    """A delay in ``[0, jitter_ms)`` for one fire, the same in every process."""
    if jitter_ms <= 0:
        return 0
    digest = hashlib.blake2b(f"{schedule_id}@{nominal_ms}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % jitter_ms
