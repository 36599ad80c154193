"""A run's records in Redis, and what a host asks about a run: its state, and to cancel it.

Keys, under the namespace's prefix (``crawjud:``), all expiring ``bots.retention`` seconds after
the run's last change:

- ``run:<id>:state``: a hash with the run's bot, user, task id, status, counters, times, report
  and, once finished, its result (JSON);
- ``run:<id>:items``: the checkpoint, one JSON record per item done, in the order done;
- ``run:<id>:events``: the event stream (see :func:`~crawjud_tasks.bots.run_events`);
- ``run:<id>:cancel``: present once the run was asked to stop.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from typing import TYPE_CHECKING, Any, Literal

import msgspec

from crawjud_tasks._state import app_state
from crawjud_tasks.bots.contracts import BotRunResult, RunCounts
from crawjud_tasks.errors import DispatchError

if TYPE_CHECKING:
    from celery import Celery

__all__ = ["RunState", "cancel_run", "check_run_id", "run_state"]

_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}")
#: What a run is doing: not started yet (only a cancel request is known), running, or ended.
RunPhase = Literal["queued", "running", "completed", "completed_with_errors", "cancelled", "failed"]


def check_run_id(run_id: Any) -> str:
    """``run_id`` if it is a valid run id.

    Raises:
        DispatchError: it is not letters, digits, ``_``, ``.``, ``:`` and ``-``.
    """
    if not isinstance(run_id, str) or not _RUN_ID.fullmatch(run_id):
        msg = (
            "a run id is letters, digits, '_', '.', ':' and '-' (at most 128, starting with a "
            f"letter or digit), got {run_id!r}"
        )
        raise DispatchError(msg)
    return run_id


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


def run_state(app: Celery, run_id: str) -> RunState | None:
    """What Redis knows about run ``run_id`` (``None``: nothing, or it expired).

    Raises:
        DispatchError: ``run_id`` is not a valid run id.
        BrokerUnavailableError: Redis did not answer.
    """
    check_run_id(run_id)
    state = app_state(app)
    with state.redis_errors(), state.redis.pipeline(transaction=False) as pipe:  # pyright: ignore[reportUnknownMemberType]  (redis-py leaves shard_hint unannotated)
        pipe.hgetall(state.keys.run(run_id, "state"))
        pipe.exists(state.keys.run(run_id, "cancel"))
        raw, cancel = pipe.execute()
    fields: dict[str, str] = {k.decode(): v.decode() for k, v in raw.items()}
    if not fields and not cancel:
        return None
    result = (
        msgspec.json.decode(fields["result"], type=BotRunResult) if "result" in fields else None
    )
    phase: Any = fields.get("status", "queued")
    return RunState(
        run_id=run_id,
        phase=phase,
        bot=fields.get("bot"),
        user_id=_user(fields.get("user_id")),
        task_id=fields.get("task_id"),
        counts=RunCounts(
            total=int(fields.get("total", 0)),
            succeeded=int(fields.get("succeeded", 0)),
            failed=int(fields.get("failed", 0)),
            skipped=int(fields.get("skipped", 0)),
        ),
        started_at=_time(fields.get("started_at")),
        finished_at=_time(fields.get("finished_at")),
        report=fields.get("report") or None,
        error=fields.get("error") or None,
        cancel_requested=bool(cancel),
        result=result,
    )


def cancel_run(app: Celery, run_id: str, *, by: str | None = None) -> RunState | None:
    """Ask run ``run_id`` to stop, wherever it runs; return what was known of it before.

    A queued run never starts (it ends as cancelled when a worker takes it); a running one stops
    before its next item, tears down, writes a report of what was done and ends as cancelled.
    The request is a Redis key every worker reads: no signal, socket or broadcast is needed. A
    run that already ended is left as it is. The request is kept for ``bots.retention``.

    Args:
        app: The host's app.
        run_id: The run's id.
        by: Who cancels (named in the ``bot_cancelled`` notification).

    Raises:
        DispatchError: ``run_id`` is not a valid run id.
        BrokerUnavailableError: Redis did not answer.
    """
    before = run_state(app, run_id)
    if before is not None and before.finished:
        return before
    state = app_state(app)
    retention = max(1, round(state.settings.bots.retention))
    with state.redis_errors():
        state.redis.set(state.keys.run(run_id, "cancel"), (by or "").encode(), ex=retention)
    return before


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
