"""A schedule: which task with which arguments, and when (typed, frozen, checked when built).

:class:`Schedule` is what a host writes; :class:`StoredSchedule` is its JSON form in Redis and in
exports (the task by name, its arguments as JSON data).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from typing import TYPE_CHECKING, Any, Literal

import msgspec

from crawjud_tasks._contracts import TaskRef, declared_contracts
from crawjud_tasks._dispatch import Call
from crawjud_tasks._guards import is_instance
from crawjud_tasks._signatures import Sig
from crawjud_tasks.errors import PayloadError, ScheduleError
from crawjud_tasks.schedules._timing import Timing, to_ms
from crawjud_tasks.schedules._timing import timing as cached_timing

if TYPE_CHECKING:
    from crawjud_tasks._codec import ContractCodec

__all__ = ["Overlap", "Schedule", "StoredSchedule", "parse_every", "stored_from_task"]

Overlap = Literal["skip", "buffer_one", "allow"]
_OVERLAPS = ("skip", "buffer_one", "allow")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$")
_EVERY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
#: The shortest interval a schedule may have.
MIN_EVERY = 1.0
#: The longest description kept.
MAX_DESCRIPTION = 500


def parse_every(value: float | str | dt.timedelta) -> float:
    """Seconds of an interval given as seconds, a ``timedelta`` or text (``1s``, ``5m``, ``1h``).

    Raises:
        ScheduleError: it is not an interval, or is below one second.
    """
    seconds: float
    if isinstance(value, dt.timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, str):
        match = _EVERY.match(value)
        if match is None:
            msg = f"every takes seconds or text like '1s', '5m', '1h', '1d', got {value!r}"
            raise ScheduleError(msg)
        seconds = float(match[1]) * _UNIT_SECONDS[match[2]]
    elif is_instance(value, (int, float)) and not is_instance(value, bool):
        seconds = float(value)
    else:
        msg = f"every takes seconds or text like '1s', '5m', '1h', got {value!r}"
        raise ScheduleError(msg)
    if not seconds >= MIN_EVERY:
        msg = f"every must be at least {MIN_EVERY:g} second, got {value!r}"
        raise ScheduleError(msg)
    return seconds


class StoredSchedule(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A schedule as JSON: what Redis keeps and what an export holds."""

    id: str
    #: The contract's name under the namespace (``reports.nightly``).
    task: str
    args: list[Any] = msgspec.field(default_factory=list[Any])
    kwargs: dict[str, Any] = msgspec.field(default_factory=dict[str, Any])
    #: Whether the contract returns nothing (its result is then never stored).
    returns_none: bool = False
    cron: str | None = None
    #: Seconds between fires.
    every: float | None = None
    timezone: str = "UTC"
    overlap: Overlap = "skip"
    catchup_window: float = 3600.0
    jitter: float = 0.0
    start_at: dt.datetime | None = None
    end_at: dt.datetime | None = None
    pause_after_failures: int | None = None
    description: str = ""
    #: ``declared`` (by code, reconciled by ``sync``) or ``runtime`` (added at run time).
    origin: Literal["declared", "runtime"] = "runtime"

    def timing(self) -> Timing:
        """The fire times of this schedule (an interval counts from ``start_at``, else 0)."""
        anchor = to_ms(self.start_at) if self.start_at is not None else 0
        every_ms = None if self.every is None else round(self.every * 1000)
        return cached_timing(self.cron, every_ms, self.timezone, anchor)

    def same_definition(self, other: StoredSchedule) -> bool:
        """Whether ``other`` defines the same schedule (origin aside)."""
        return dataclasses.replace(other, origin=self.origin) == self


def check_stored(spec: StoredSchedule) -> StoredSchedule:
    """``spec`` if every field is valid (the checks :class:`Schedule` makes).

    Raises:
        ScheduleError: a field is invalid; the message names it.
    """
    if not _ID.match(spec.id):
        msg = (
            "a schedule id is 1 to 100 letters, digits, '_', '.', ':' or '-' starting with a "
            f"letter or digit, got {spec.id!r}"
        )
        raise ScheduleError(msg)
    where = f"schedule {spec.id!r}"
    if (spec.cron is None) == (spec.every is None):
        msg = f"{where}: give exactly one of cron='0 6 * * *' or every='5m'"
        raise ScheduleError(msg)
    if spec.every is not None:
        parse_every(spec.every)
    if spec.overlap not in _OVERLAPS:
        msg = f"{where}: overlap must be one of {', '.join(_OVERLAPS)}, got {spec.overlap!r}"
        raise ScheduleError(msg)
    for name in ("catchup_window", "jitter"):
        value = getattr(spec, name)
        if not is_instance(value, (int, float)) or not value >= 0:
            msg = f"{where}: {name} must be seconds >= 0, got {value!r}"
            raise ScheduleError(msg)
    for name in ("start_at", "end_at"):
        value = getattr(spec, name)
        if value is not None and value.tzinfo is None:
            msg = f"{where}: {name} must be a timezone-aware datetime, got {value!r}"
            raise ScheduleError(msg)
    if spec.start_at is not None and spec.end_at is not None and spec.end_at <= spec.start_at:
        msg = f"{where}: end_at ({spec.end_at}) must be after start_at ({spec.start_at})"
        raise ScheduleError(msg)
    failures = spec.pause_after_failures
    if failures is not None and (is_instance(failures, bool) or failures < 1):
        msg = f"{where}: pause_after_failures must be an integer >= 1 or None, got {failures!r}"
        raise ScheduleError(msg)
    if len(spec.description) > MAX_DESCRIPTION:
        msg = f"{where}: description is longer than {MAX_DESCRIPTION} characters"
        raise ScheduleError(msg)
    spec.timing()  # checks the cron expression and the zone
    _check_arguments(spec)
    return spec


def find_contract(name: str) -> TaskRef[Any, Any] | None:
    """The contract declared in this process under ``name`` (``reports.nightly``), if any."""
    return next((ref for ref in declared_contracts() if ref.name == name), None)


def _check_arguments(spec: StoredSchedule) -> None:
    contract = find_contract(spec.task)
    if contract is None:
        msg = (
            f"schedule {spec.id!r}: no contract named {spec.task!r} is declared in this process; "
            "import the module that declares it (task_contract) first"
        )
        raise ScheduleError(msg)
    codec: ContractCodec = contract.codec
    try:
        codec.decode_arguments(tuple(spec.args), dict(spec.kwargs))
    except PayloadError as exc:
        msg = f"schedule {spec.id!r}: {exc}"
        raise ScheduleError(msg) from None


def stored_from_task(task: object, schedule_id: str) -> tuple[str, list[Any], dict[str, Any], bool]:
    """The name, JSON arguments and ``returns_none`` of a complete signature.

    Raises:
        ScheduleError: ``task`` is not one task's complete signature.
    """
    node: Any = getattr(task, "node", None)
    if not is_instance(task, Sig) or not isinstance(node, Call):
        msg = (
            f"schedule {schedule_id!r}: task must be one contract's complete signature, "
            f"contract.s(...), got {task!r}"
        )
        raise ScheduleError(msg)
    call: Call = node
    return call.name, list(call.args), dict(call.kwargs), call.codec.returns_none


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Schedule:
    """A task to run on a schedule.

    ``task`` is a complete typed signature, ``contract.s(...)``: mypy and pyright check its
    arguments. Give exactly one of ``cron`` (five fields, read in ``timezone``) or ``every``
    (seconds, a ``timedelta`` or ``'1s'``/``'5m'``/``'1h'``; at least one second).

    Raises:
        ScheduleError: a field is invalid (checked when the schedule is built).
    """

    id: str
    task: Sig[Any]
    cron: str | None = None
    every: float | str | dt.timedelta | None = None
    #: The zone cron fields are read in (an interval ignores it).
    timezone: str = "UTC"
    #: When the previous fire still runs: ``skip`` this fire, keep one waiting
    #: (``buffer_one``), or run both (``allow``).
    overlap: Overlap = "skip"
    #: Seconds after its time a missed fire may still run (once); older ones are counted missed.
    catchup_window: float = 3600.0
    #: Up to this many seconds of delay per fire (the same in every process), to spread load.
    jitter: float = 0.0
    #: No fire before this instant (an interval counts from it).
    start_at: dt.datetime | None = None
    #: No fire after this instant.
    end_at: dt.datetime | None = None
    #: Pause the schedule (and send an ``alert`` mail) after this many failed runs in a row.
    pause_after_failures: int | None = None
    description: str = ""

    def __post_init__(self) -> None:
        self.stored()

    def stored(self, origin: Literal["declared", "runtime"] = "runtime") -> StoredSchedule:
        """The JSON form of this schedule (checked)."""
        name, args, kwargs, returns_none = stored_from_task(self.task, str(self.id))
        every = None if self.every is None else parse_every(self.every)
        return check_stored(
            StoredSchedule(
                id=self.id,
                task=name,
                args=args,
                kwargs=kwargs,
                returns_none=returns_none,
                cron=self.cron,
                every=every,
                timezone=self.timezone,
                overlap=self.overlap,
                catchup_window=float(self.catchup_window),
                jitter=float(self.jitter),
                start_at=self.start_at,
                end_at=self.end_at,
                pause_after_failures=self.pause_after_failures,
                description=self.description,
                origin=origin,
            )
        )
