"""A run's records in Redis, read and written through one object: :class:`RunStore`.

Keys (from ``app_state(app).keys``), all expiring ``bots.retention`` seconds after the run's
last change:

- ``run:<id>:state``: a hash with the run's bot, user, task id, status, counters, times, report
  and, once finished, its result (JSON); ``workflow`` once a parallel run began to send its
  chunks, ``sent`` once it did;
- ``run:<id>:items``: the checkpoint, one JSON record per item done, in input order (a chunk
  ``n`` of a parallel run has its own, ``run:<id>:items:<n>``);
- ``run:<id>:events``: the event stream (see :func:`~crawjud_tasks.bots.run_events`);
- ``run:<id>:cancel``: present once the run was asked to stop (holds who asked);
- ``run:<id>:abort``: present once a chunk of a parallel run failed (the others stop).

The runner's writes go through the pipelined :class:`~crawjud_tasks.bots._recorder.Recorder`
(an item costs two commands and no round trip); the rest are single commands on the app's
client.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, Literal, final

import msgspec

from crawjud_tasks._codec import encode
from crawjud_tasks._state import app_state
from crawjud_tasks.bots._events import encode_event
from crawjud_tasks.bots._recorder import Recorder
from crawjud_tasks.bots.contracts import BotRunResult, RunCounts

if TYPE_CHECKING:
    from celery import Celery

    from crawjud_tasks.bots._context import LogLevel

__all__ = ["RunPhase", "RunState", "RunStore"]

#: What a run is doing: not started yet (only a cancel request is known), running, or ended.
RunPhase = Literal["queued", "running", "completed", "completed_with_errors", "cancelled", "failed"]
_COUNTERS = ("succeeded", "failed", "skipped")


@dataclasses.dataclass(frozen=True, slots=True)
class RunState:
    """What Redis knows about a run."""

    run_id: str
    #: ``queued`` (asked to cancel before it started), ``running``, or how it ended.
    phase: RunPhase
    bot: str | None
    user_id: int | str | None
    #: The id of the task that runs (or ran) it.
    task_id: str | None
    counts: RunCounts
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    report: str | None
    error: str | None
    #: Whether a cancel was asked for.
    cancel_requested: bool
    #: The run's result, once it ended.
    result: BotRunResult | None

    @property
    def finished(self) -> bool:
        """Whether the run ended."""
        return self.result is not None or self.phase not in ("queued", "running")


@final
class RunStore:
    """Every read and write of one run's records; see the module docstring.

    Its writer (a connection of its own) is opened by the first write and given back by
    :meth:`close`.
    """

    __slots__ = (
        "_abort",
        "_batch",
        "_cancel",
        "_events",
        "_items",
        "_shared",
        "_state",
        "_window",
        "_writer",
        "events_max",
        "retention",
        "run_id",
    )

    def __init__(self, app: Celery, run_id: str, chunk: int | None = None) -> None:
        shared = app_state(app)
        keys = shared.keys
        settings = shared.settings.bots
        self._shared = shared
        self.run_id = run_id
        self._state = keys.run(run_id, "state")
        self._items = keys.run_checkpoint(run_id, chunk)
        self._events = keys.run(run_id, "events")
        self._cancel = keys.run(run_id, "cancel")
        self._abort = keys.run(run_id, "abort")
        #: Seconds every record is kept after the run's last change.
        self.retention = max(1, round(settings.retention))
        #: The most events the stream keeps.
        self.events_max = settings.events_max
        self._writer: Recorder | None = None
        self._batch = 1
        self._window = 0.0

    # -- reads --------------------------------------------------------------------------------

    def read_state(self) -> RunState | None:
        """What Redis knows about the run (``None``: nothing, or it expired).

        Raises:
            BrokerUnavailableError: Redis did not answer.
        """
        shared = self._shared
        with shared.redis_errors(), shared.redis.pipeline(transaction=False) as pipe:  # pyright: ignore[reportUnknownMemberType]  (redis-py leaves shard_hint unannotated)
            pipe.hgetall(self._state)
            pipe.exists(self._cancel)
            raw, cancel = pipe.execute()
        fields: dict[str, str] = {k.decode(): v.decode() for k, v in raw.items()}
        if not fields and not cancel:
            return None
        result = (
            msgspec.json.decode(fields["result"], type=BotRunResult) if "result" in fields else None
        )
        phase: Any = fields.get("status", "queued")
        return RunState(
            run_id=self.run_id,
            phase=phase,
            bot=fields.get("bot"),
            user_id=_user(fields.get("user_id")),
            task_id=fields.get("task_id"),
            counts=RunCounts(
                int(fields.get("total", 0)), *(int(fields.get(name, 0)) for name in _COUNTERS)
            ),
            started_at=_time(fields.get("started_at")),
            finished_at=_time(fields.get("finished_at")),
            report=fields.get("report") or None,
            error=fields.get("error") or None,
            cancel_requested=bool(cancel),
            result=result,
        )

    def stored_result(self) -> BotRunResult | None:
        """The run's result, if it ended.

        Raises:
            BrokerUnavailableError: Redis did not answer.
        """
        with self._shared.redis_errors():
            raw: Any = self._shared.redis.hget(self._state, "result")
        return None if raw is None else msgspec.json.decode(raw, type=BotRunResult)

    def checkpoint_length(self) -> int:
        """How many items the checkpoint holds (this chunk's, in a parallel run).

        Raises:
            BrokerUnavailableError: Redis did not answer.
        """
        with self._shared.redis_errors():
            return int(self._shared.redis.llen(self._items))

    def checkpoint(self, page: int = 10_000) -> Iterator[bytes]:
        """The checkpoint's lines, in the order written, read ``page`` at a time.

        Raises:
            BrokerUnavailableError: Redis did not answer.
        """
        start = 0
        while True:
            with self._shared.redis_errors():
                raw: Any = self._shared.redis.lrange(self._items, start, start + page - 1)
            yield from raw
            if len(raw) < page:
                return
            start += page

    def workflow_sent(self) -> bool:
        """Whether a parallel run's chunks were sent.

        Raises:
            BrokerUnavailableError: Redis did not answer.
        """
        with self._shared.redis_errors():
            return bool(self._shared.redis.hexists(self._state, "sent"))

    def mark_workflow_sent(self) -> None:
        """Record that a parallel run's chunks were sent (a Redis error is raised as it is)."""
        self._shared.redis.hset(self._state, "sent", "1")

    def cancel_requested(self) -> bool:
        """Whether the run was asked to stop.

        Raises:
            BrokerUnavailableError: Redis did not answer.
        """
        with self._shared.redis_errors():
            return bool(self._shared.redis.exists(self._cancel))

    def stop_requested(self) -> bool:
        """Whether the run was asked to stop or a chunk of it failed (errors raised as they
        are: the cancel watcher reports them)."""
        return bool(self._shared.redis.exists(self._cancel, self._abort))

    def cancelled_by(self) -> str | None:
        """Who asked the run to stop, if known (``None`` on a Redis error too)."""
        try:
            raw: Any = self._shared.redis.get(self._cancel)
        except Exception:
            return None
        return raw.decode(errors="replace") or None if raw else None

    def shared_counts(self, total: int) -> RunCounts:
        """The counters of a parallel run in its state hash, as its chunks add to them (what
        this process sent is flushed first).

        Raises:
            BrokerUnavailableError: Redis did not answer.
        """
        self.flush()
        with self._shared.redis_errors():
            raw: Any = self._shared.redis.hmget(self._state, list(_COUNTERS))
        succeeded, failed, skipped = (int(value or 0) for value in raw)
        return RunCounts(total, succeeded, failed, skipped)

    # -- single writes ------------------------------------------------------------------------

    def claim_workflow(self, task_id: str) -> bool:
        """Mark that the run sent its chunks; ``False`` if a delivery before this one did.

        Raises:
            BrokerUnavailableError: Redis did not answer.
        """
        with self._shared.redis_errors():
            return bool(self._shared.redis.hsetnx(self._state, "workflow", task_id))

    def request_cancel(self, by: str | None) -> None:
        """Ask the run to stop, naming who asks.

        Raises:
            BrokerUnavailableError: Redis did not answer.
        """
        with self._shared.redis_errors():
            self._shared.redis.set(self._cancel, (by or "").encode(), ex=self.retention)

    def abort(self, reason: str) -> None:
        """Stop the run's other chunks (a Redis error is raised as it is)."""
        self._shared.redis.set(self._abort, reason.encode(), ex=self.retention)

    def log_now(self, level: LogLevel, message: str) -> None:
        """Append a log line to the events at once, outside the writer (a Redis error is raised
        as it is)."""
        event = encode_event("log", time=time.time(), level=level, message=message)
        self._shared.redis.xadd(
            self._events, dict(event.items()), maxlen=self.events_max, approximate=True
        )

    # -- the run's writer ---------------------------------------------------------------------

    def checkpoint_every(self, batch: int, window: float) -> None:
        """Send the items' records in writes of ``batch`` items at most, each record waiting
        ``window`` seconds at most (``batch`` 1: each item at once)."""
        self._batch, self._window = max(1, batch), window
        if self._writer is not None:
            self._writer.batch, self._writer.window = self._batch, self._window

    def tick(self) -> None:
        """Send the items waiting, if their window has passed (errors raised as they are)."""
        if self._writer is not None:
            self._writer.tick()

    def touch_checkpoint(self) -> None:
        """Push the checkpoint's expiry back to the retention (sent without waiting)."""
        (self._writer or self._open()).expire(self._items)

    def item(self, line: bytes, event: Mapping[str, str], *, count: str | None = None) -> None:
        """An item is done: its checkpoint line and its event (and, in a chunk, 1 added to the
        state's counter ``count``), sent without waiting."""
        (self._writer or self._open()).item(line, event, count=count)

    def event(self, event: Mapping[str, str]) -> None:
        """Append an event to the stream (sent without waiting)."""
        (self._writer or self._open()).event(event)

    def write_counts(self, counts: RunCounts) -> None:
        """The run's counters in its state hash (sent without waiting)."""
        (self._writer or self._open()).state(_count_fields(counts))

    def write_state(
        self,
        *,
        bot: str,
        user_id: int | str,
        task_id: str,
        status: str,
        started_at: dt.datetime,
        counts: RunCounts,
        result: BotRunResult | None = None,
        store_result: bool = True,
    ) -> None:
        """The run's state hash: running (no ``result``), or ended with ``result`` (kept for a
        later delivery unless ``store_result`` is false). Sent without waiting."""
        fields: dict[str, str | bytes] = {
            "bot": bot,
            "user_id": msgspec.json.encode(user_id),
            "task_id": task_id,
            "status": status,
            "started_at": started_at.isoformat(),
            **_count_fields(counts),
        }
        if result is not None:
            fields["finished_at"] = result.finished_at.isoformat()
            fields["report"] = result.report or ""
            fields["error"] = result.error or ""
            if store_result:
                fields["result"] = msgspec.json.encode(encode(result))
        (self._writer or self._open()).state(fields)

    def flush(self) -> None:
        """Wait for the answers to everything the writer sent.

        Raises:
            BrokerUnavailableError: Redis did not answer.
        """
        if self._writer is not None:
            self._writer.flush()

    def close(self) -> None:
        """Flush, and give the writer's connection back.

        Raises:
            BrokerUnavailableError: Redis did not answer.
        """
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()

    def _open(self) -> Recorder:
        self._writer = Recorder(
            self._shared,
            items=self._items,
            events=self._events,
            state=self._state,
            expiring=(self._items, self._events, self._state, self._cancel, self._abort),
            events_max=self.events_max,
            retention=self.retention,
        )
        self._writer.batch, self._writer.window = self._batch, self._window
        return self._writer


def _count_fields(counts: RunCounts) -> dict[str, str | bytes]:
    return {
        "total": str(counts.total),
        "succeeded": str(counts.succeeded),
        "failed": str(counts.failed),
        "skipped": str(counts.skipped),
    }


def _user(raw: str | None) -> int | str | None:
    """The user id as the runner stored it: JSON (``7`` or ``"ana"``)."""
    if raw is None:
        return None
    try:
        user: int | str = msgspec.json.decode(raw, type=int | str)
    except msgspec.DecodeError:
        return int(raw) if raw.lstrip("-").isdigit() else raw  # not JSON: kept as written
    return user


def _time(raw: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(raw) if raw else None
