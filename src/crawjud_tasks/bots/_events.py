"""A run's event stream: what the run did, in order, for a host or a CLI to replay and follow.

Each run has one Redis stream, ``<prefix>run:<run id>:events``, which the runner appends to
(``XADD`` trimmed to about ``bots.events_max`` entries, expiring ``bots.retention`` seconds
after the last one). The kinds of event:

- ``started``: the run began (or resumed); ``data`` has ``bot``, ``user_id``, ``total`` and
  ``resumed_at``.
- ``log``: a line of the run's log, at a level, maybe about an item's row.
- ``item``: an item's outcome: level ``success``, ``error`` or ``info`` (skipped), its row, the
  reason, and the counts after it.
- ``progress``: the counts so far.
- ``finished``: how the run ended (its status and counts); ``data`` has ``report`` and ``error``.

An entry is a few short text fields (JSON only for ``data``), written once per item:

====== ============================================= =========================================
field  holds                                          present
====== ============================================= =========================================
``k``  the kind (``started``, ``log``...)            always
``t``  the time, Unix seconds with 6 decimals         always
``l``  the level (``info``, ``warning``...)          when given
``m``  the message                                    when given
``r``  the spreadsheet row                            when given
``c``  counts ``total,succeeded,failed,skipped``      when given
``s``  the run status (``completed``...)             when given
``d``  other data, compact JSON object                when not empty
====== ============================================= =========================================
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import re
import time as _time
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, Literal, cast, get_args

from crawjud_tasks._guards import is_dict, is_instance
from crawjud_tasks._state import app_state
from crawjud_tasks.bots._context import LogLevel
from crawjud_tasks.bots.contracts import RunCounts, RunStatus
from crawjud_tasks.errors import DispatchError, PayloadError, ResultTimeoutError

if TYPE_CHECKING:
    import redis
    from celery import Celery

__all__ = [
    "EventKind",
    "RunEvent",
    "check_follow_seconds",
    "decode_event",
    "encode_event",
    "events_key",
    "format_event",
    "longest_block",
    "run_events",
]

#: What an event of a run's stream says.
EventKind = Literal["started", "log", "item", "progress", "finished"]

_KINDS: frozenset[str] = frozenset(get_args(EventKind))
_LEVELS: frozenset[str] = frozenset(get_args(LogLevel))
#: Entries read per round trip.
_BATCH = 500
_ENTRY_ID = re.compile(r"[0-9]+(-[0-9]+)?")
#: A blocking read waits at most this share of the client's socket timeout, so that a quiet
#: stream never looks like an unreachable Redis.
_BLOCK_SHARE = 0.5
_UTC = dt.timezone.utc


def _no_data() -> Mapping[str, Any]:
    return {}


@dataclasses.dataclass(frozen=True, slots=True)
class RunEvent:
    """One event of a run's stream.

    ``str(event)`` is a one-line rendering (see :func:`format_event`).
    """

    #: The stream entry's id (pass it as ``after`` to read on from here).
    id: str
    #: The run's id.
    run_id: str
    #: What the event says.
    kind: EventKind
    #: When it happened (UTC).
    time: dt.datetime
    #: A log line's level; an item's outcome: ``success``, ``error`` or ``info`` (skipped).
    level: LogLevel | None = None
    #: The log line, or the item's reason.
    message: str | None = None
    #: The spreadsheet row the event is about.
    row: int | None = None
    #: The counts after the event (``started``, ``item``, ``progress``, ``finished``).
    counts: RunCounts | None = None
    #: How the run ended (``finished``).
    status: RunStatus | None = None
    #: Anything else (``started``: bot, user_id, total, resumed_at; ``finished``: report, error).
    data: Mapping[str, Any] = dataclasses.field(default_factory=_no_data)

    def __str__(self) -> str:
        return format_event(self)


def events_key(app: Celery, run_id: str) -> str:
    """The Redis key of the run's event stream: ``<prefix>run:<run id>:events``.

    Raises:
        DispatchError: ``run_id`` is not a non-empty string.
    """
    if not is_instance(run_id, str) or not run_id:
        msg = f"run_id must be a non-empty string, got {run_id!r}"
        raise DispatchError(msg)
    return app_state(app).keys.run(run_id, "events")


def encode_event(
    kind: EventKind,
    *,
    time: float,
    level: LogLevel | None = None,
    message: str | None = None,
    row: int | None = None,
    counts: RunCounts | None = None,
    status: RunStatus | None = None,
    data: Mapping[str, Any] | None = None,
) -> dict[str, str]:
    """The fields of a stream entry for an event (what the runner passes to ``XADD``).

    Args:
        kind: What the event says.
        time: When, in Unix seconds (``time.time()``).
        level: A log line's level, or an item's outcome.
        message: The log line, or the item's reason (already scrubbed of secrets).
        row: The spreadsheet row the event is about.
        counts: The run's counts after the event.
        status: How the run ended (``finished``).
        data: Anything else, JSON-serialisable (other values are written as their ``str``).

    Raises:
        DispatchError: ``kind`` is not an event kind.
    """
    if kind not in _KINDS:
        msg = f"kind must be one of {', '.join(sorted(_KINDS))}, got {kind!r}"
        raise DispatchError(msg)
    fields = {"k": kind, "t": f"{time:.6f}"}
    if level is not None:
        fields["l"] = level
    if message is not None:
        fields["m"] = message
    if row is not None:
        fields["r"] = str(row)
    if counts is not None:
        fields["c"] = f"{counts.total},{counts.succeeded},{counts.failed},{counts.skipped}"
    if status is not None:
        fields["s"] = status.value
    if data:
        fields["d"] = json.dumps(
            data if is_dict(data) else dict(data),
            separators=(",", ":"),
            ensure_ascii=False,
            default=str,
        )
    return fields


def decode_event(run_id: str, entry_id: bytes | str, fields: Mapping[bytes, bytes]) -> RunEvent:
    """The event a stream entry holds (the inverse of :func:`encode_event`).

    Raises:
        PayloadError: the entry is not an event this version of crawjud-tasks writes.
    """
    ident = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    try:
        kind = fields[b"k"].decode()
        if kind not in _KINDS:
            msg = f"unknown kind {kind!r}"
            raise ValueError(msg)
        level = _text(fields, b"l")
        if level is not None and level not in _LEVELS:
            msg = f"unknown level {level!r}"
            raise ValueError(msg)
        row = fields.get(b"r")
        counts = fields.get(b"c")
        status = fields.get(b"s")
        data = fields.get(b"d")
        decoded: Any = {} if data is None else json.loads(data)
        if not is_dict(decoded):
            msg = f"data is not a JSON object: {decoded!r}"
            raise ValueError(msg)
        return RunEvent(
            id=ident,
            run_id=run_id,
            kind=cast("EventKind", kind),
            time=dt.datetime.fromtimestamp(float(fields[b"t"]), _UTC),
            level=cast("LogLevel | None", level),
            message=_text(fields, b"m"),
            row=None if row is None else int(row),
            counts=None if counts is None else _decode_counts(counts),
            status=None if status is None else RunStatus(status.decode()),
            data=decoded,
        )
    except (KeyError, ValueError, TypeError) as exc:
        detail = f"no field {exc}" if isinstance(exc, KeyError) else str(exc)
        msg = f"entry {ident} of run {run_id!r} is not a run event ({detail})"
        raise PayloadError(msg) from exc


def _decode_counts(raw: bytes) -> RunCounts:
    total, succeeded, failed, skipped = map(int, raw.split(b","))
    return RunCounts(total, succeeded, failed, skipped)


def _text(fields: Mapping[bytes, bytes], name: bytes) -> str | None:
    value = fields.get(name)
    return None if value is None else value.decode()


def run_events(
    app: Celery,
    run_id: str,
    *,
    follow: bool = False,
    after: str | None = None,
    block: float = 1.0,
    timeout: float | None = None,
) -> Iterator[RunEvent]:
    """The run's events, oldest first: every kept one, then (with ``follow``) new ones as they
    are written.

    Read in batches of 500 entries. A stream trimmed to ``bots.events_max`` has lost its oldest
    events; a run with no stream (never started, or expired) has none.

    Args:
        app: The app whose Redis keeps the run's events.
        run_id: The run's id.
        follow: Keep reading new events until the ``finished`` one (which is yielded last).
        after: Start after this entry id (an event's ``id``) instead of at the beginning.
        block: Seconds each read waits for new events while following.
        timeout: Seconds to follow at most, from the first read (``None``: until
            ``finished``); not used without ``follow``.

    Raises:
        DispatchError: an argument is invalid (raised at the call, before anything is read).
        ResultTimeoutError: following, no ``finished`` event within ``timeout`` (the run may
            still run; its message names the last entry id to follow again ``after``).
        BrokerUnavailableError: Redis did not answer.
        PayloadError: an entry of the stream is not a run event.
    """
    key = events_key(app, run_id)
    if after is not None and (not is_instance(after, str) or not _ENTRY_ID.fullmatch(after)):
        msg = f"after must be a stream entry id such as '1718000000000-0', got {after!r}"
        raise DispatchError(msg)
    check_follow_seconds("block", block, allow_none=False)
    check_follow_seconds("timeout", timeout, allow_none=True)
    start = after or "0-0"
    return _read(app, key, run_id, follow=follow, after=start, block=block, timeout=timeout)


def check_follow_seconds(name: str, value: object, *, allow_none: bool) -> None:
    if value is None and allow_none:
        return
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        none = " (or None)" if allow_none else ""
        msg = f"{name} must be a number of seconds > 0{none}, got {value!r}"
        raise DispatchError(msg)


def _read(
    app: Celery,
    key: str,
    run_id: str,
    *,
    follow: bool,
    after: str,
    block: float,
    timeout: float | None,
) -> Iterator[RunEvent]:
    client = app_state(app).redis
    deadline = None if timeout is None else _time.monotonic() + timeout
    wait = min(block, longest_block(client))
    last = after
    while True:
        block_ms: int | None = None
        if follow:
            remaining = wait if deadline is None else min(wait, deadline - _time.monotonic())
            if remaining <= 0:
                msg = (
                    f"run {run_id!r} did not finish within {timeout} s of following (read up to "
                    f"entry {last}); it may still run: follow again with after={last!r}"
                )
                raise ResultTimeoutError(msg)
            # Never 0 ms: BLOCK 0 waits for ever.
            block_ms = max(1, int(remaining * 1000))
        with app_state(app).redis_errors():
            raw: Any = client.xread({key: last}, count=_BATCH, block=block_ms)
        entries: list[tuple[bytes, dict[bytes, bytes]]] = raw[0][1] if raw else []
        for entry_id, fields in entries:
            event = decode_event(run_id, entry_id, fields)
            last = event.id
            yield event
            if follow and event.kind == "finished":
                return
        if not follow and len(entries) < _BATCH:
            return


def longest_block(client: redis.Redis) -> float:
    """The longest blocking read that stays within the client's socket timeout."""
    kwargs: Mapping[str, Any] = client.connection_pool.connection_kwargs
    socket_timeout = kwargs.get("socket_timeout")
    if isinstance(socket_timeout, int | float) and socket_timeout > 0:
        return float(socket_timeout) * _BLOCK_SHARE
    return math.inf


def format_event(event: RunEvent, *, tz: dt.tzinfo = _UTC) -> str:
    """A one-line rendering of an event, e.g.
    ``12:03:04 [row 17] success: done (3/10 ok, 1 failed, 6 left)``.

    Args:
        event: The event.
        tz: The time zone of the time shown (default UTC).
    """
    parts = [event.time.astimezone(tz).strftime("%H:%M:%S")]
    if event.row is not None:
        parts.append(f"[row {event.row}]")
    parts.extend(_head(event))
    if event.message:
        parts.append(event.message)
    if event.counts is not None:
        parts.append(_counts(event.counts))
    if event.kind == "finished":
        if event.data.get("error"):
            parts.append(f"error: {event.data['error']}")
        if event.data.get("report"):
            parts.append(f"report: {event.data['report']}")
    return " ".join(parts)


def _head(event: RunEvent) -> list[str]:
    """What the event is, after its time and row."""
    data = event.data
    if event.kind == "started":
        head = ["started"]
        if "bot" in data:
            head.append(str(data["bot"]))
        if "user_id" in data:
            head.append(f"for user {data['user_id']}")
        if data.get("resumed_at"):
            head.append(f"resuming after {data['resumed_at']} items")
        return head
    if event.kind == "finished":
        return ["finished", event.status.value] if event.status else ["finished"]
    if event.kind == "progress" or event.level is None:
        return [f"{event.kind}:" if event.message else event.kind]
    level = "skipped" if event.kind == "item" and event.level == "info" else event.level
    return [f"{level}:"]


def _counts(counts: RunCounts) -> str:
    skipped = f", {counts.skipped} skipped" if counts.skipped else ""
    return (
        f"({counts.succeeded}/{counts.total} ok, {counts.failed} failed{skipped}, "
        f"{counts.remaining} left)"
    )
