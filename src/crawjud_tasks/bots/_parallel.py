"""A parallel run: the run's task replaces itself by a chord of chunk tasks (each processes a
contiguous share of the items under a lease of its own) whose body finishes the run (merge,
report, emit, notify)."""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from crawjud_tasks._workflows import chord
from crawjud_tasks.bots._loop import process
from crawjud_tasks.bots._outcome import finish, report, started
from crawjud_tasks.bots.contracts import (
    BotRunResult,
    ChunkResult,
    RunStatus,
    finish_run,
    run_chunk,
)

if TYPE_CHECKING:
    from crawjud_tasks.bots._bot import Item
    from crawjud_tasks.bots._run import Run

__all__ = ["execute_chunk", "execute_finish", "go_parallel", "split"]

_LOG = logging.getLogger("crawjud_tasks.bots")


def split(total: int, parts: int) -> list[tuple[int, int]]:
    """``range(total)`` cut into at most ``parts`` contiguous ``(start, stop)`` of near-equal
    sizes."""
    parts = max(1, min(parts, total))
    size, extra = divmod(total, parts)
    bounds: list[tuple[int, int]] = []
    start = 0
    for number in range(parts):
        stop = start + size + (1 if number < extra else 0)
        bounds.append((start, stop))
        start = stop
    return bounds


def go_parallel(run: Run, items: Sequence[Item], resumed_at: int) -> BotRunResult:
    """Replace the run's task by a chord of chunk tasks whose body finishes the run."""
    if not run.store.claim_workflow(run.task_id):
        # This message was delivered again after its chunks were sent: wait for their end.
        while (stored := run.store.stored_result()) is None:
            time.sleep(1.0)
        return stored
    started(run, resumed_at)
    bounds = split(len(items), run.parameters.parallelism)
    args = (run.bot_id, run.user_id, run.parameters, run.run_id, run.task_id)
    header = [
        run_chunk.using(run.app).s(*args, number, start, stop)
        for number, (start, stop) in enumerate(bounds)
    ]
    body = finish_run.using(run.app).s(*args, run.started_at)
    run.log(
        "info",
        f"split into {len(bounds)} chunks of about {bounds[0][1] - bounds[0][0]} items",
        None,
    )
    run.store.flush()
    run.task.replace(chord(header, body).to_celery(run.app))
    msg = "Task.replace() returned instead of raising Ignore"
    raise AssertionError(msg)


def execute_chunk(run: Run, start: int, stop: int) -> ChunkResult:
    """Process the items ``start`` to ``stop`` of a parallel run (one chunk task)."""
    chunk = run.chunk
    assert chunk is not None
    with run.stages(stored=False) as stages:
        assert stages.factory is not None
        if run.store.cancel_requested():
            return ChunkResult(chunk=chunk, status=RunStatus.CANCELLED)
        prepared = run.prepare(stages.factory)
        done = run.load_checkpoint(prepared.items)
        mine = prepared.items[start:stop]
        resumed_at = sum(1 for item in mine if item.index in done)
        if resumed_at:
            run.log("info", f"chunk {chunk} resumed after {resumed_at} items", None)
        status, error = process(run, prepared, mine, done, resumed_at)
        if status is RunStatus.FAILED:
            try:
                run.store.abort(error or "a chunk failed")
            except Exception as exc:  # (the others run to their end instead)
                _LOG.warning("run %s: the other chunks were not stopped: %s", run.run_id, exc)
        elif status is RunStatus.COMPLETED_WITH_ERRORS:
            status = RunStatus.COMPLETED
        return ChunkResult(chunk=chunk, status=status, error=error)


def execute_finish(
    run: Run, chunks: Sequence[ChunkResult], started_at: dt.datetime
) -> BotRunResult:
    """Finish a parallel run once its chunks ended: merge, report, emit, notify."""
    with run.stages() as stages:
        if stages.stored is not None:
            return stages.stored
        assert stages.factory is not None
        run.started_at = started_at
        items = run.prepare(stages.factory).items
        run.load_checkpoint(items)
        failed = [c for c in chunks if c.status is RunStatus.FAILED]
        if failed:
            status, error = RunStatus.FAILED, failed[0].error
        elif run.store.cancel_requested() or any(c.status is RunStatus.CANCELLED for c in chunks):
            status, error = RunStatus.CANCELLED, None
        elif run.counts.failed:
            status, error = RunStatus.COMPLETED_WITH_ERRORS, None
        else:
            status, error = RunStatus.COMPLETED, None
        return finish(run, status, error, report(run, items, status, error))
