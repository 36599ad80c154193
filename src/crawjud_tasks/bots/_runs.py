"""What a host asks about a run: its state, and to cancel it (the records are read and written by
the run's :class:`~crawjud_tasks.bots._store.RunStore`)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from crawjud_tasks.bots._store import RunPhase, RunState, RunStore
from crawjud_tasks.errors import DispatchError

if TYPE_CHECKING:
    from celery import Celery

__all__ = ["RunPhase", "RunState", "cancel_run", "check_run_id", "run_state"]

_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}")


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


def run_state(app: Celery, run_id: str) -> RunState | None:
    """What Redis knows about run ``run_id`` (``None``: nothing, or it expired).

    Raises:
        DispatchError: ``run_id`` is not a valid run id.
        BrokerUnavailableError: Redis did not answer.
    """
    return RunStore(app, check_run_id(run_id)).read_state()


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
    store = RunStore(app, check_run_id(run_id))
    before = store.read_state()
    if before is not None and before.finished:
        return before
    store.request_cancel(by)
    return before
