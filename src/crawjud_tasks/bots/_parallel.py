"""A parallel run: the run's task indexes the input once, then replaces itself by a chord of
chunk tasks (each reads only its contiguous share of the index, processes it under a lease of
its own and writes its own report part) whose body finishes the run (counts summed from the
chunks' results, the parts merged into the report as they are read, emit, notify). A chunk that
fails outright (a poison message) ends the run ``failed`` through the chord's error callback."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from celery.exceptions import Ignore

from crawjud_tasks._workflows import chord
from crawjud_tasks.bots._loop import process
from crawjud_tasks.bots._outcome import finish, report, started
from crawjud_tasks.bots._parts import part_path, read_parts
from crawjud_tasks.bots._run import describe
from crawjud_tasks.bots.contracts import (
    BotRunResult,
    ChunkResult,
    RunCounts,
    RunStatus,
    finish_run,
    run_chunk,
    run_failed,
)

if TYPE_CHECKING:
    from crawjud_tasks.bots._run import Prepared, Run

__all__ = [
    "chunk_task_id",
    "execute_chunk",
    "execute_failed",
    "execute_finish",
    "go_parallel",
    "split",
]

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


def chunk_task_id(task_id: str, chunk: int) -> str:
    """The task id of chunk ``chunk`` of the run whose task is ``task_id``."""
    return f"{task_id}:chunk:{chunk}"


def go_parallel(run: Run, prepared: Prepared) -> BotRunResult:
    """Replace the run's task by a chord of chunk tasks whose body finishes the run (and whose
    error callback ends it if a chunk fails outright).

    Raises:
        Ignore: the chunks were sent (the chord's body gives the task its result), or this is
            a delivery of a run whose chunks an earlier delivery sent: it ends at once.
    """
    if not run.store.claim_workflow(run.task_id):
        if run.store.workflow_sent():
            _LOG.info("run %s: its chunks were sent before; this delivery ends", run.run_id)
            raise Ignore
        # The delivery that claimed the run died before its chunks left: send them now (a chunk
        # that did leave resumes from its checkpoint under its lease).
    else:
        started(run, 0)
    bounds = split(prepared.index.total, run.parameters.parallelism)
    args = (run.bot_id, run.user_id, run.parameters, run.run_id, run.task_id)
    header = [
        run_chunk.using(run.app).s(*args, number, start, stop)
        for number, (start, stop) in enumerate(bounds)
    ]
    body = finish_run.using(run.app).s(*args, run.started_at)
    on_error = run_failed.using(run.app).s(*args, len(bounds), run.started_at)
    canvas: Any = chord(header, body, on_error=on_error).to_celery(run.app)
    members: Any = canvas.tasks
    for number, member in enumerate(getattr(members, "tasks", members)):
        member.set(task_id=chunk_task_id(run.task_id, number))
    run.log(
        "info",
        f"split into {len(bounds)} chunks of about {bounds[0][1] - bounds[0][0]} items",
        None,
    )
    run.store.flush()
    try:
        run.task.replace(canvas)
    except Ignore:
        run.store.mark_workflow_sent()
        raise
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
        done = run.resume(prepared, start, stop)
        if done:
            run.log("info", f"chunk {chunk} resumed after {done} items", None)
        status, error = process(run, prepared, run.items(prepared, start + done, stop), done)
        if status is RunStatus.FAILED:
            try:
                run.store.abort(error or "a chunk failed")
            except Exception as exc:  # (the others run to their end instead)
                _LOG.warning("run %s: the other chunks were not stopped: %s", run.run_id, exc)
        elif status is RunStatus.COMPLETED_WITH_ERRORS:
            status = RunStatus.COMPLETED
        assert run.part is not None
        run.part.close()
        return ChunkResult(
            chunk=chunk,
            status=status,
            error=error,
            counts=run.part.counts,
            returned=list(run.part.returned),
        )


def execute_finish(
    run: Run, chunks: Sequence[ChunkResult], started_at: dt.datetime
) -> BotRunResult:
    """Finish a parallel run once its chunks ended: merge their counts and report parts (read
    one after the other), emit, notify."""
    with run.stages() as stages:
        if stages.stored is not None:
            return stages.stored
        assert stages.factory is not None
        run.started_at = started_at
        index = run.prepare(stages.factory).index
        ordered = sorted(chunks, key=lambda c: c.chunk)
        run.counts = RunCounts(
            total=index.total,
            succeeded=sum(c.counts.succeeded for c in ordered),
            failed=sum(c.counts.failed for c in ordered),
            skipped=sum(c.counts.skipped for c in ordered),
        )
        failed = [c for c in ordered if c.status is RunStatus.FAILED]
        if failed:
            status, error = RunStatus.FAILED, failed[0].error
        elif run.store.cancel_requested() or any(c.status is RunStatus.CANCELLED for c in chunks):
            status, error = RunStatus.CANCELLED, None
        elif run.counts.failed:
            status, error = RunStatus.COMPLETED_WITH_ERRORS, None
        else:
            status, error = RunStatus.COMPLETED, None
        parts = [part_path(run.output_dir(), c.chunk) for c in ordered]
        returned = [name for c in ordered for name in c.returned]
        return finish(
            run,
            status,
            error,
            report(run, index.columns, parts, returned, status=status, error=error),
        )


def execute_failed(run: Run, chunks: int, started_at: dt.datetime) -> None:
    """End a parallel run whose chunk failed outright (the chord's error callback): ``failed``,
    naming the chunk and its reason, with a report of the parts written."""
    with run.stages() as stages:
        if stages.stored is not None:
            return
        assert stages.factory is not None
        run.started_at = started_at
        error = _chunk_failure(run, chunks)
        try:
            run.store.abort(error)
        except Exception as exc:  # (the others run to their end instead)
            _LOG.warning("run %s: the other chunks were not stopped: %s", run.run_id, exc)
        run.log("error", error, None)
        try:
            index = run.prepare(stages.factory).index
        except Exception as exc:
            run.log("error", f"the report was not written: {describe(exc)}", None)
            finish(run, RunStatus.FAILED, error, None)
            return
        run.counts = run.store.shared_counts(index.total)
        parts = [part_path(run.output_dir(), number) for number in range(chunks)]
        returned = [
            name
            for record in read_parts(parts, index.columns)
            if record.status == "succeeded"
            for name in record.data
        ]
        status = RunStatus.FAILED
        finish(
            run,
            status,
            error,
            report(run, index.columns, parts, returned, status=status, error=error),
        )


def _chunk_failure(run: Run, chunks: int) -> str:
    """Which chunk failed, and why (from the chunks' results)."""
    for number in range(chunks):
        result: Any = run.app.AsyncResult(chunk_task_id(run.task_id, number))
        if result.state == "FAILURE":
            reason = result.result
            text = describe(reason) if isinstance(reason, BaseException) else str(reason)
            return f"chunk {number} failed: {text}"
    return "a chunk failed, and its result is gone"
