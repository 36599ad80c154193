"""Ending a run its task could not end: from what was checkpointed, once.

A run's task ends the run itself when it returns. Every other way its message can end (a poison
message, an error, the hard time limit, a revoke, a lost worker: the ``on_terminal`` hook of the
run contracts), a chunk of a parallel run failing for good, and a run the safety net finds
abandoned (:mod:`~crawjud_tasks.bots._reaper`) go through :func:`end_run`: the state ends
``failed`` with the reason, the "finished" event is emitted, a report of the items checkpointed
is written, and the ``bot_failed`` notification sent, as a run that ends by itself does.

:func:`end_run` takes the run's lease first (a dead holder's is freed or awaited), so it never
ends a run a live worker still runs, and it leaves a run that already ended as it ended.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import TYPE_CHECKING, Any

from crawjud_tasks._delivery import lease_ttl, take_lease
from crawjud_tasks._keys import run_lease_name
from crawjud_tasks.bots._outcome import finish, report
from crawjud_tasks.bots._parallel import split
from crawjud_tasks.bots._parts import part_path
from crawjud_tasks.bots._registry import find_bot
from crawjud_tasks.bots._run import Prepared, Run, describe
from crawjud_tasks.bots._store import RunStore
from crawjud_tasks.bots.contracts import BotParameters, BotRunResult, RunCounts, RunStatus
from crawjud_tasks.errors import LeaseHeldError

if TYPE_CHECKING:
    from pathlib import Path

    from celery import Celery

    from crawjud_tasks._ending import Ending
    from crawjud_tasks._lease import Lease

__all__ = ["close_run", "end_run", "end_run_of"]

_LOG = logging.getLogger("crawjud_tasks.bots")
#: Seconds between two tries for the lease of a holder that is dying.
_LEASE_POLL = 0.2


def end_run(
    app: Celery,
    run_id: str,
    reason: str,
    *,
    status: RunStatus = RunStatus.FAILED,
    bot_id: str | None = None,
    user_id: int | str | None = None,
    parameters: BotParameters | None = None,
    task_id: str | None = None,
) -> BotRunResult | None:
    """End run ``run_id`` as ``status`` (``failed``) with ``reason``, from what it checkpointed:
    state, "finished" event, report, notification.

    What the caller does not give (the bot, user, parameters, task id) is read from the run's
    state. Idempotent: a run that ended stays as it ended, a run a live worker holds is left to
    it; both answer ``None``. Safe to call from any process (the parallel run's error callback
    too).

    Raises:
        BrokerUnavailableError: Redis did not answer.
    """
    lease = _take(app, run_id)
    if lease is None:
        _LOG.info("run %s is held by a live worker: it is left to end by itself", run_id)
        return None
    store = RunStore(app, run_id)
    try:
        state = store.read_state()
        if state is not None and state.finished:
            return None
        parameters = parameters or store.parameters()
        bot_id = bot_id or (state.bot if state is not None else None)
        if parameters is None or bot_id is None:
            _LOG.error("run %s cannot be ended: its bot and parameters are unknown", run_id)
            return None
        if user_id is None:
            user_id = state.user_id if state is not None and state.user_id is not None else ""
        task_id = task_id or (state.task_id if state is not None else None) or run_id
        run = Run(app, None, bot_id, user_id, parameters, task_id=task_id, run_id=run_id)
        if state is not None:
            run.started_at = state.started_at or run.started_at
            run.counts = state.counts
        _LOG.warning("run %s ends %s: %s", run_id, status.value, reason)
        try:
            return close_run(run, status, reason)
        finally:
            store.close()
            run.store.close()
    finally:
        try:
            lease.release()
        except Exception as exc:
            _LOG.warning("run %s: the lease was not released: %s", run_id, exc)


def close_run(run: Run, status: RunStatus, reason: str | None) -> BotRunResult:
    """End ``run`` (its lease held) as ``status``, with a report of the items it checkpointed
    (each chunk's too, in a parallel run; none if nothing was, or its input cannot be read)."""
    report_at = None
    try:
        prepared = run.prepare(find_bot(run.app, run.bot_id))
        parts, returned = _rewrite_parts(run, prepared)
        if run.counts.done:
            columns = prepared.index.columns
            report_at = report(run, columns, parts, returned, status=status, error=reason)
    except Exception as exc:
        run.log("warning", f"the run's input was not read again: {describe(exc)}", None)
    return finish(run, status, reason, report_at)


def _rewrite_parts(run: Run, prepared: Prepared) -> tuple[list[Path], list[str]]:
    """The run's report parts, rewritten from its checkpoints (a chunk's each, in a parallel
    run), their counts summed in ``run.counts``; and the columns the bot returned."""
    total = prepared.index.total
    parallel = run.parameters.parallelism > 1 and total > 1
    bounds = split(total, run.parameters.parallelism) if parallel else [(0, total)]
    counts = RunCounts(total=total)
    parts: list[Path] = []
    returned: dict[str, None] = {}
    for number, (start, stop) in enumerate(bounds):
        task = run
        if parallel:
            task = Run(
                run.app,
                None,
                run.bot_id,
                run.user_id,
                run.parameters,
                task_id=run.task_id,
                run_id=run.run_id,
                chunk=number,
            )
        task.resume(prepared, start, stop)
        part = task.part
        assert part is not None
        part.close()
        parts.append(part_path(run.output_dir(), task.chunk))
        returned.update(part.returned)
        counts = dataclasses.replace(
            counts,
            succeeded=counts.succeeded + part.counts.succeeded,
            failed=counts.failed + part.counts.failed,
            skipped=counts.skipped + part.counts.skipped,
        )
    run.counts = counts
    return parts, list(returned)


def end_run_of(
    ending: Ending,
    bot_id: str,
    user_id: int | str,
    parameters: BotParameters,
    run_id: str | None = None,
) -> None:
    """End the run of a bot-run message that ended without its task's return (the run
    contracts' ``on_terminal`` hook).

    A run whose task raised before the run started (an unknown bot, parameters that do not fit,
    a duplicate) was refused, not ended: the task's error is its record, as for any refusal.
    """
    run_id = run_id or parameters.run_id or ending.task_id
    if ending.cause == "error" and RunStore(ending.app, run_id).read_state() is None:
        return
    reason = _REASONS.get(ending.cause, "{reason}").format(reason=ending.reason)
    end_run(
        ending.app,
        run_id,
        reason,
        bot_id=bot_id,
        user_id=user_id,
        parameters=parameters,
        task_id=ending.task_id,
    )


_REASONS: dict[str, str] = {
    "poison": "the run's process died at each try: {reason}",
    "error": "the run's task failed: {reason}",
    "time_limit": "{reason}",
    "revoked": "the run was revoked: {reason}",
    "worker_lost": "the run's worker was lost: {reason}",
}


def _take(app: Celery, run_id: str) -> Lease | None:
    """The run's lease, once its holder (if any) is gone; ``None``: a live holder keeps it."""
    name = run_lease_name(run_id)
    deadline = time.monotonic() + lease_ttl(app) + 2.0
    while True:
        try:
            return take_lease(app, name)
        except LeaseHeldError as exc:
            holder: Any = exc.holder
            # A holder of this machine that is dying (a killed pool process not reaped yet) is
            # waited for; one that renews elsewhere runs the run.
            if time.monotonic() > deadline:
                return None
            _LOG.debug("run %s: waiting for the lease of %s", run_id, holder)
            time.sleep(_LEASE_POLL)
