"""A run's item loop: ``setup``, each item not done yet (retried inline by the bot's
:class:`~crawjud_tasks.RetryPolicy` for transient errors, recorded as it completes, a cancel
request watched for before each), ``teardown``."""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import tenacity
from celery.exceptions import SoftTimeLimitExceeded

from crawjud_tasks._retry import RetryPolicy
from crawjud_tasks.bots._bot import Item, ItemOutcome, ItemRecord, ItemStatus
from crawjud_tasks.bots._checkpoint import checkpoint_line
from crawjud_tasks.bots._context import LogLevel, RunContext, RunLog
from crawjud_tasks.bots._events import encode_event
from crawjud_tasks.bots._run import describe
from crawjud_tasks.bots.contracts import RunStatus
from crawjud_tasks.errors import FatalBotError, ItemError

if TYPE_CHECKING:
    from crawjud_tasks.bots._run import Prepared, Run
    from crawjud_tasks.bots.contracts import Cell

__all__ = ["CANCEL_POLL", "process"]

_LOG = logging.getLogger("crawjud_tasks.bots")
#: Seconds between two looks at the run's cancel request (and at its records left waiting).
CANCEL_POLL = 0.25
T = TypeVar("T")


class _Stop(Exception):
    """The item loop ends early with this status and reason."""

    def __init__(self, status: RunStatus, reason: str | None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def process(
    run: Run, prepared: Prepared, items: Iterable[Item], resumed_at: int
) -> tuple[RunStatus, str | None]:
    """Set up, process ``items`` (watching for a cancel), tear down; how the loop ended.

    Raises:
        LeaseLostError: the run's lease was lost (another worker may run it now).
    """
    ctx: RunContext[Any] = RunContext(
        run_id=run.run_id,
        bot_id=run.bot_id,
        user_id=run.user_id,
        parameters=run.parameters,
        options=prepared.options,
        secrets=prepared.secrets,
        output_dir=run.output_dir(),
        log=RunLog(run.log),
        cancel=run.cancel,
        resumed_at=resumed_at,
    )
    stop_watching = threading.Event()
    watcher = threading.Thread(
        target=_watch_cancel,
        args=(run, stop_watching),
        name=f"crawjud-run-cancel:{run.run_id}",
        daemon=True,
    )
    watcher.start()
    try:
        status, error = _Loop(run, prepared.bot, ctx).work(items)
    finally:
        stop_watching.set()
        watcher.join()
    if run.lost is not None:
        raise run.lost
    return status, error


class _Loop:
    __slots__ = ("bot", "ctx", "policy", "run")

    def __init__(self, run: Run, bot: Any, ctx: RunContext[Any]) -> None:
        self.run = run
        self.bot = bot
        self.ctx = ctx
        self.policy: RetryPolicy = getattr(bot, "retry", None) or RetryPolicy.court_site()

    def work(self, items: Iterable[Item]) -> tuple[RunStatus, str | None]:
        run, bot, ctx = self.run, self.bot, self.ctx
        try:
            try:
                self.attempts("setup", lambda: bot.setup(ctx))
                for item in items:
                    if run.cancel.is_set():
                        raise _Stop(RunStatus.CANCELLED, None)
                    self.item(item)
            finally:
                try:
                    bot.teardown(ctx)
                except Exception as exc:
                    run.log("warning", f"teardown failed: {describe(exc)}", None)
        except _Stop as stop:
            return stop.status, stop.reason
        except Exception as exc:  # FatalBotError, SoftTimeLimitExceeded, or a setup that failed
            return RunStatus.FAILED, self.fatal(exc)
        if run.counts.failed:
            return RunStatus.COMPLETED_WITH_ERRORS, None
        return RunStatus.COMPLETED, None

    def item(self, item: Item) -> None:
        run, scrubber = self.run, self.run.scrubber
        status: ItemStatus
        data: Mapping[str, Cell]
        reason: str | None
        try:
            outcome = self.attempts(
                f"row {item.row}", lambda: self.bot.process(item, self.ctx), row=item.row
            )
        except ItemError as exc:
            status, data, reason = "failed", {}, scrubber.scrub(str(exc) or type(exc).__name__)
        except (FatalBotError, SoftTimeLimitExceeded):
            raise
        except Exception as exc:
            status, data, reason = "failed", {}, scrubber.scrub(describe(exc))
        else:
            if not isinstance(outcome, ItemOutcome):
                status, data = "failed", {}
                reason = f"process() returned {type(outcome).__name__}, not an ItemOutcome"
            else:
                status = outcome.status
                data = scrubber.scrub_cells(outcome.data)
                reason = None if outcome.message is None else scrubber.scrub(outcome.message)
        record(run, ItemRecord(item.index, item.row, status, item.data, data, reason))
        limit = run.parameters.max_failures
        if status == "failed" and limit is not None and run.counts.failed >= limit:
            raise _Stop(
                RunStatus.FAILED,
                f"stopped after {run.counts.failed} failed items (max_failures={limit})",
            )
        if run.lost is not None:
            raise _Stop(RunStatus.FAILED, str(run.lost))

    def attempts(self, label: str, call: Callable[[], T], *, row: int | None = None) -> T:
        """``call()``, retried by the bot's policy (``RetryPolicy.retrying()``) after a first
        failure; each retry is logged in the run's log, and a cancel request ends the waits.

        The first attempt is a plain call: the policy's machinery costs only when it fails
        (the policy is then handed that failure, and counts its ``timeout`` from its start).
        """
        started = time.monotonic()
        try:
            return call()
        except Exception as exc:
            first: list[BaseException] = [exc]
        took = time.monotonic() - started
        run, policy = self.run, self.policy
        last = first[0]

        def before(state: tenacity.RetryCallState) -> None:
            if state.attempt_number == 1:  # the first attempt ran before the policy took over
                state.start_time -= took

        def again() -> T:
            if first:  # the first attempt's failure, handed to the policy
                raise first.pop()
            return call()

        def retry(exc: BaseException) -> bool:
            return policy.should_retry(exc) and not run.cancel.is_set()

        def before_sleep(state: tenacity.RetryCallState) -> None:
            nonlocal last
            outcome = state.outcome
            last = (outcome.exception() if outcome is not None else None) or last
            run.log(
                "warning",
                f"{label}: attempt {state.attempt_number} of {policy.attempts} failed "
                f"({describe(last)}); retrying in {state.upcoming_sleep:.1f} s",
                row,
            )

        def sleep(seconds: float) -> None:
            if run.cancel.wait(seconds):
                raise last

        retrying = policy.retrying(name=label).copy(
            retry=tenacity.retry_if_exception(retry),
            before=before,
            before_sleep=before_sleep,
            sleep=sleep,
        )
        return retrying(again)

    def fatal(self, exc: BaseException) -> str:
        if isinstance(exc, SoftTimeLimitExceeded):
            reason = "the task's soft time limit was reached"
        elif isinstance(exc, FatalBotError):
            reason = str(exc) or type(exc).__name__
        else:
            reason = f"setup failed: {describe(exc)}"
        reason = self.run.scrubber.scrub(reason)
        self.run.log("error", reason, None)
        return reason


def record(run: Run, item: ItemRecord) -> None:
    """An item is done: count it, write it to the report part, send its checkpoint line and
    event."""
    counts = run.counts
    level: LogLevel
    if item.status == "succeeded":
        counts = dataclasses.replace(counts, succeeded=counts.succeeded + 1)
        level = "success"
    elif item.status == "failed":
        counts = dataclasses.replace(counts, failed=counts.failed + 1)
        level = "error"
    else:
        counts = dataclasses.replace(counts, skipped=counts.skipped + 1)
        level = "info"
    run.counts = counts
    assert run.part is not None
    run.part.write(item)
    chunked = run.chunk is not None
    event = encode_event(
        "item",
        time=time.time(),
        level=level,
        message=item.reason,
        row=item.row,
        counts=None if chunked else counts,
    )
    run.store.item(checkpoint_line(item), event, count=item.status if chunked else None)
    now = time.monotonic()
    if now >= run.next_progress:
        run.progress(now)


def _watch_cancel(run: Run, stop_watching: threading.Event) -> None:
    warned = False
    while not stop_watching.wait(CANCEL_POLL):
        try:
            run.store.tick()  # a window of records left waiting by a slow item
            if run.store.stop_requested():
                run.cancel.set()
                run.log("warning", "cancel requested: stopping before the next item", None)
                return
        except Exception as exc:
            if not warned:
                _LOG.warning("run %s: cannot read its cancel request: %s", run.run_id, exc)
                warned = True
