"""A run's start and end: the "started" and "finished" records, the report, the notifications."""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from crawjud_tasks.bots._events import encode_event
from crawjud_tasks.bots._extensions import report_store
from crawjud_tasks.bots._notify import notify_finished, notify_started
from crawjud_tasks.bots._parts import read_parts
from crawjud_tasks.bots._reports import ReportRun, write_report_stream
from crawjud_tasks.bots._run import describe
from crawjud_tasks.bots.contracts import BotRunResult, RunStatus

if TYPE_CHECKING:
    from crawjud_tasks.bots._bot import ItemRecord
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
        error_sample=run.error_sample[:ERROR_SAMPLE],
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


def report(
    run: Run,
    columns: Sequence[str],
    parts: Sequence[Path],
    returned: Iterable[str],
    *,
    status: RunStatus,
    error: str | None,
) -> str | None:
    """Write the run's report from its ``parts`` (streamed, in order) and hand it to the report
    store; where it is (``None``: it was not written, which the run's log says)."""
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
        records = _sampled(run, read_parts(parts, columns))
        xlsx = run.counts.total <= run.settings.bots.report_xlsx_max_items
        if not xlsx:
            run.log(
                "warning",
                f"the report has no workbook: {run.counts.total} items is more than "
                f"bots.report_xlsx_max_items ({run.settings.bots.report_xlsx_max_items})",
                None,
            )
        archive = write_report_stream(
            summary, records, list(dict.fromkeys(returned)), run.output_dir() / "report", xlsx=xlsx
        )
        location = report_store(run.app).store(run.run_id, archive)
    except Exception as exc:
        run.log("error", f"the report was not written: {describe(exc)}", None)
        return None
    run.log("info", f"report: {location}", None)
    return location


def _sampled(run: Run, records: Iterator[ItemRecord]) -> Iterator[ItemRecord]:
    """``records``, the first failed ones' reasons kept in ``run.error_sample``."""
    sample = run.error_sample
    sample.clear()
    for record in records:
        if record.status == "failed" and len(sample) < ERROR_SAMPLE:
            sample.append(f"row {record.row}: {record.reason}")
        yield record
