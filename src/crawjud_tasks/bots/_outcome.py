"""A run's start and end: the "started" and "finished" records, the report, the notifications."""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from crawjud_tasks.bots._events import encode_event
from crawjud_tasks.bots._extensions import report_store
from crawjud_tasks.bots._notify import notify_finished, notify_started
from crawjud_tasks.bots._reports import ReportRun, write_report
from crawjud_tasks.bots._run import describe
from crawjud_tasks.bots.contracts import BotRunResult, RunStatus

if TYPE_CHECKING:
    from crawjud_tasks.bots._bot import Item
    from crawjud_tasks.bots._run import Run

__all__ = ["ERROR_SAMPLE", "finish", "report", "started"]

_LOG = logging.getLogger("crawjud_tasks.bots")
#: Failed items whose reasons the result carries.
ERROR_SAMPLE = 10


def started(run: Run, resumed_at: int) -> None:
    """The run began (or resumed after ``resumed_at`` items): state, event, notification."""
    counts = run.counts
    run.write_state("running")
    run.store.event(
        encode_event(
            "started",
            time=time.time(),
            counts=counts,
            data={
                "bot": run.bot_id,
                "user_id": run.user_id,
                "task_id": run.task_id,
                "total": counts.total,
                "resumed_at": resumed_at,
            },
        )
    )
    if resumed_at:
        run.log("info", f"resumed after {resumed_at} of {counts.total} items done", None)
    else:
        notify_started(
            run.app,
            run_id=run.run_id,
            bot=run.bot_id,
            title=run.title,
            parameters=run.parameters,
            total=counts.total,
            started_at=run.started_at,
            user_id=run.user_id,
        )
    _LOG.info(
        "run %s of %s started: %d items (%d done before)",
        run.run_id,
        run.bot_id,
        counts.total,
        resumed_at,
    )
    run.progress(time.monotonic())


def finish(
    run: Run, status: RunStatus, error: str | None, report_at: str | None, *, store: bool = True
) -> BotRunResult:
    """The run ended: its result (kept for a later delivery with ``store``), state, "finished"
    event, notification."""
    error = None if error is None else run.scrubber.scrub(error)
    counts = run.counts
    result = BotRunResult(
        run_id=run.run_id,
        bot=run.bot_id,
        user_id=run.user_id,
        status=status,
        counts=counts,
        started_at=run.started_at,
        finished_at=dt.datetime.now(dt.timezone.utc),
        report=report_at,
        error=error,
        error_sample=[
            f"row {record.row}: {record.reason}"
            for record in run.records
            if record.status == "failed"
        ][:ERROR_SAMPLE],
    )
    run.write_state(status.value, result, store_result=store)
    run.store.event(
        encode_event(
            "finished",
            time=time.time(),
            counts=counts,
            status=status,
            data={"report": report_at, "error": error},
        )
    )
    run.store.flush()
    notify_finished(
        run.app,
        result,
        title=run.title,
        parameters=run.parameters,
        cancelled_by=run.store.cancelled_by(),
    )
    _LOG.info(
        "run %s of %s ended %s: %d succeeded, %d failed, %d skipped of %d%s",
        run.run_id,
        run.bot_id,
        status.value,
        counts.succeeded,
        counts.failed,
        counts.skipped,
        counts.total,
        f" ({error})" if error else "",
    )
    return result


def report(run: Run, items: Sequence[Item], status: RunStatus, error: str | None) -> str | None:
    """Write the run's report and hand it to the report store; where it is (``None``: it was
    not written, which the run's log says)."""
    columns: dict[str, None] = {}
    for item in items:
        columns.update(dict.fromkeys(item.data))
    summary = ReportRun(
        run_id=run.run_id,
        bot=run.bot_id,
        user_id=run.user_id,
        status=status,
        counts=run.counts,
        started_at=run.started_at,
        finished_at=dt.datetime.now(dt.timezone.utc),
        error=error,
        columns=list(columns),
    )
    try:
        archive = write_report(summary, run.records, run.output_dir() / "report")
        location = report_store(run.app).store(run.run_id, archive)
    except Exception as exc:
        run.log("error", f"the report was not written: {describe(exc)}", None)
        return None
    run.log("info", f"report: {location}", None)
    return location
