"""One run of a bot, from the message to the result: the implementation of ``execute_bot``.

initialise (find the bot, check its options, read the input, resolve the secrets, take the run's
lease, load the checkpoint, emit "started") -> ``setup`` -> each item not done yet (retried
inline for transient errors, recorded as it completes, cancellation checked before each) ->
``teardown`` -> report -> emit "finished" and store the result under the run id.

A run whose worker died is delivered again (at-least-once contract): the new delivery takes the
run's lease once the dead holder's has gone, reads the checkpoint and processes only the items
without a record. A run that ended answers a second delivery, or a second dispatch with the same
run id, with its stored result.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
from celery.exceptions import SoftTimeLimitExceeded

from crawjud_tasks._canvas import chord
from crawjud_tasks._codec import encode
from crawjud_tasks._keys import RunPart, run_lease_name
from crawjud_tasks._retry import RetryPolicy
from crawjud_tasks._state import app_state
from crawjud_tasks.bots._bot import Item, ItemOutcome, ItemRecord, ItemStatus
from crawjud_tasks.bots._checkpoint import checkpoint_line, load_checkpoint
from crawjud_tasks.bots._context import LogLevel, RunContext, RunLog
from crawjud_tasks.bots._events import encode_event
from crawjud_tasks.bots._extensions import report_store, secret_providers
from crawjud_tasks.bots._fit import bot_options, check_columns
from crawjud_tasks.bots._inputs import read_items
from crawjud_tasks.bots._notify import (
    notify_finished,
    notify_started,
)
from crawjud_tasks.bots._recorder import Recorder
from crawjud_tasks.bots._registry import BotFactory, find_bot
from crawjud_tasks.bots._reports import ReportRun, write_report
from crawjud_tasks.bots._run_lease import take_run_lease
from crawjud_tasks.bots._secrets import Scrubber, resolve_secret
from crawjud_tasks.bots.contracts import (
    BotParameters,
    BotRunResult,
    Cell,
    ChunkResult,
    RunCounts,
    RunStatus,
    execute_bot,
    finish_run,
    run_chunk,
)
from crawjud_tasks.errors import (
    BotParameterError,
    FatalBotError,
    ItemError,
    LeaseLostError,
    SecretNotFoundError,
)

if TYPE_CHECKING:
    from celery import Celery

    from crawjud_tasks._lease import Lease
    from crawjud_tasks._secret import Secret

__all__ = ["implement_run_contracts", "run_folder", "split"]

_LOG = logging.getLogger("crawjud_tasks.bots")
#: Seconds between two looks at the run's cancel request.
CANCEL_POLL = 0.25
#: Seconds between two updates of the run's state (Redis hash and the task's PROGRESS state).
PROGRESS_EVERY = 1.0
#: Failed items whose reasons the result carries.
ERROR_SAMPLE = 10
_PYTHON_LEVEL = {"info": logging.INFO, "success": logging.INFO, "warning": logging.WARNING}


def implement_run_contracts(app: Celery) -> None:
    """Bind the implementations of the bot-run contracts on ``app``."""

    @execute_bot.implement_bound(app)
    def _execute_bot(
        task: Any, bot_id: str, user_id: int | str, parameters: BotParameters
    ) -> BotRunResult:
        return _Run(app, task, bot_id, user_id, parameters).execute()

    @run_chunk.implement_bound(app)
    def _run_chunk(  # noqa: PLR0917  (the contract's parameters, positional on the wire)
        task: Any,
        bot_id: str,
        user_id: int | str,
        parameters: BotParameters,
        run_id: str,
        task_id: str,
        chunk: int,
        start: int,
        stop: int,
    ) -> ChunkResult:
        run = _Run(app, task, bot_id, user_id, parameters, task_id=task_id, run_id=run_id)
        return run.execute_chunk(chunk, start, stop)

    @finish_run.implement_bound(app)
    def _finish_run(  # noqa: PLR0917  (the contract's parameters, positional on the wire)
        task: Any,
        chunks: list[ChunkResult],
        bot_id: str,
        user_id: int | str,
        parameters: BotParameters,
        run_id: str,
        task_id: str,
        started_at: dt.datetime,
    ) -> BotRunResult:
        run = _Run(app, task, bot_id, user_id, parameters, task_id=task_id, run_id=run_id)
        return run.execute_finish(chunks, started_at)


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


def run_folder(app: Celery, run_id: str) -> Path:
    """The working folder of run ``run_id`` on this machine."""
    settings = app_state(app).settings
    root = settings.bots.runs_dir or settings.resolved_data_dir / "runs"
    return Path(root).expanduser() / run_id.replace(":", "_")


class _Stop(Exception):
    """The item loop ends early with this status and reason."""

    def __init__(self, status: RunStatus, reason: str | None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class _Run:
    """The state of one run in this process (never shared with another run)."""

    def __init__(
        self,
        app: Celery,
        task: Any,
        bot_id: str,
        user_id: int | str,
        parameters: BotParameters,
        *,
        task_id: str | None = None,
        run_id: str | None = None,
    ) -> None:
        self.app = app
        self.task = task
        #: The id of the run's ``execute_bot`` task (whose result is the run's result).
        self.task_id = task_id or str(task.request.id)
        self.run_id = run_id or parameters.run_id or self.task_id
        #: The chunk this task processes, in a parallel run.
        self.chunk: int | None = None
        self.bot_id = bot_id
        self.user_id = user_id
        self.parameters = parameters
        self.state = app_state(app)
        self.settings = self.state.settings
        self.cancel = threading.Event()
        self.lost: LeaseLostError | None = None
        self.scrubber = Scrubber(())
        self.counts = RunCounts()
        self.records: list[ItemRecord] = []
        self.started_at = dt.datetime.now(dt.timezone.utc)
        self.recorder: Recorder | None = None
        self.title = ""
        self._next_progress = 0.0

    # -- the run ------------------------------------------------------------------------------

    def execute(self) -> BotRunResult:
        stored = self._stored_result()
        if stored is not None:
            _LOG.info(
                "run %s ended before (%s); its result is returned", self.run_id, stored.status.value
            )
            return stored
        factory = find_bot(self.app, self.bot_id)
        run_lease = self._take_lease()
        try:
            stored = self._stored_result()  # it may have ended while we waited for the lease
            if stored is not None:
                return stored
            self.recorder = Recorder(self.app, self.run_id)
            try:
                return self._run(factory)
            finally:
                self._close_recorder()
        finally:
            self._release(run_lease)

    def _run(self, factory: BotFactory) -> BotRunResult:
        if self._cancel_requested():
            _LOG.info("run %s was cancelled before it started", self.run_id)
            return self._finish(RunStatus.CANCELLED, None, None)
        try:
            bot, options, items, secrets = self._prepare(factory)
        except (BotParameterError, SecretNotFoundError) as exc:
            self._finish(RunStatus.FAILED, str(exc), None, store=False)
            raise
        done = self._load_checkpoint(items)
        if self.parameters.parallelism > 1 and len(items) > 1:
            return self._go_parallel(items, len(done))
        resumed_at = len(done)
        self._started(resumed_at)
        status, error = self._process(
            bot=bot, options=options, secrets=secrets, items=items, done=done, resumed_at=resumed_at
        )
        report = self._report(items, status, error)
        return self._finish(status, error, report)

    def _prepare(self, factory: BotFactory) -> tuple[Any, Any, list[Item], dict[str, Secret]]:
        """Make the bot, check its options, read the items, resolve the secrets.

        Raises:
            BotParameterError: an option, the input or its columns do not fit the bot.
            SecretNotFoundError: a secret reference is unknown.
        """
        bot = factory()
        self.title = str(getattr(bot, "title", "") or "")
        options = bot_options(self.bot_id, bot, self.parameters.options)
        items = read_items(
            self.parameters.input,
            roots=self.settings.bots.allowed_roots,
            max_inline_rows=self.settings.bots.max_inline_rows,
        )
        check_columns(self.bot_id, bot, items)
        secrets = self._resolve_secrets()
        self.scrubber = Scrubber(secrets.values())
        self.counts = dataclasses.replace(self.counts, total=len(items))
        return bot, options, items, secrets

    def _process(
        self,
        *,
        bot: Any,
        options: Any,
        secrets: dict[str, Secret],
        items: Sequence[Item],
        done: set[int],
        resumed_at: int,
    ) -> tuple[RunStatus, str | None]:
        """Set up, process ``items`` not in ``done`` (watching for a cancel), tear down."""
        ctx: RunContext[Any] = RunContext(
            run_id=self.run_id,
            bot_id=self.bot_id,
            user_id=self.user_id,
            parameters=self.parameters,
            options=options,
            secrets=secrets,
            output_dir=self._output_dir(),
            log=RunLog(self._log),
            cancel=self.cancel,
            resumed_at=resumed_at,
        )
        watcher = threading.Thread(
            target=self._watch_cancel, name=f"crawjud-run-cancel:{self.run_id}", daemon=True
        )
        stop_watching = threading.Event()
        self._stop_watching = stop_watching
        watcher.start()
        try:
            status, error = self._work(bot, ctx, items, done)
        finally:
            stop_watching.set()
            watcher.join()
        if self.lost is not None:
            raise self.lost
        return status, error

    # -- a parallel run: a chord of chunks, then one finish -----------------------------------

    def _go_parallel(self, items: Sequence[Item], resumed_at: int) -> BotRunResult:
        """Replace this task by a chord of chunk tasks whose body finishes the run."""
        client = self.state.redis
        with self.state.redis_errors():
            first = client.hsetnx(self._key("state"), "workflow", self.task_id)
        if not first:
            # This message was delivered again after its chunks were sent: wait for their end.
            return self._await_result()
        self._started(resumed_at)
        bounds = split(len(items), self.parameters.parallelism)
        header = [
            run_chunk.using(self.app).s(
                self.bot_id, self.user_id, self.parameters, self.run_id, self.task_id,
                number, start, stop,
            )
            for number, (start, stop) in enumerate(bounds)
        ]  # fmt: skip
        body = finish_run.using(self.app).s(
            self.bot_id, self.user_id, self.parameters, self.run_id, self.task_id, self.started_at
        )
        self._log(
            "info",
            f"split into {len(bounds)} chunks of about {bounds[0][1] - bounds[0][0]} items",
            None,
        )
        assert self.recorder is not None
        self.recorder.flush()
        self.task.replace(chord(header, body).to_celery(self.app))
        msg = "Task.replace() returned instead of raising Ignore"
        raise AssertionError(msg)

    def _await_result(self) -> BotRunResult:
        while True:
            stored = self._stored_result()
            if stored is not None:
                return stored
            time.sleep(1.0)

    def execute_chunk(self, chunk: int, start: int, stop: int) -> ChunkResult:
        """Process the items ``start`` to ``stop`` of a parallel run (one chunk task)."""
        factory = find_bot(self.app, self.bot_id)
        self.chunk = chunk
        chunk_lease = self._take_lease(run_lease_name(self.run_id, chunk))
        try:
            self.recorder = Recorder(self.app, self.run_id)
            try:
                if self._cancel_requested():
                    return ChunkResult(chunk=chunk, status=RunStatus.CANCELLED)
                bot, options, items, secrets = self._prepare(factory)
                done = self._load_checkpoint(items)
                mine = items[start:stop]
                resumed_at = sum(1 for item in mine if item.index in done)
                if resumed_at:
                    self._log("info", f"chunk {chunk} resumed after {resumed_at} items", None)
                status, error = self._process(
                    bot=bot,
                    options=options,
                    secrets=secrets,
                    items=mine,
                    done=done,
                    resumed_at=resumed_at,
                )
                if status is RunStatus.FAILED:
                    self._abort(error or "a chunk failed")
                elif status is RunStatus.COMPLETED_WITH_ERRORS:
                    status = RunStatus.COMPLETED
                return ChunkResult(chunk=chunk, status=status, error=error)
            finally:
                self._close_recorder()
        finally:
            self._release(chunk_lease)

    def execute_finish(
        self, chunks: Sequence[ChunkResult], started_at: dt.datetime
    ) -> BotRunResult:
        """Finish a parallel run once its chunks ended: merge, report, emit, notify."""
        stored = self._stored_result()
        if stored is not None:
            return stored
        factory = find_bot(self.app, self.bot_id)
        run_lease = self._take_lease()
        try:
            self.recorder = Recorder(self.app, self.run_id)
            try:
                self.started_at = started_at
                _, _, items, _ = self._prepare(factory)
                self._load_checkpoint(items)
                failed = [c for c in chunks if c.status is RunStatus.FAILED]
                if failed:
                    status, error = RunStatus.FAILED, failed[0].error
                elif self._cancel_requested() or any(
                    c.status is RunStatus.CANCELLED for c in chunks
                ):
                    status, error = RunStatus.CANCELLED, None
                elif self.counts.failed:
                    status, error = RunStatus.COMPLETED_WITH_ERRORS, None
                else:
                    status, error = RunStatus.COMPLETED, None
                report = self._report(items, status, error)
                return self._finish(status, error, report)
            finally:
                self._close_recorder()
        finally:
            self._release(run_lease)

    def _abort(self, reason: str) -> None:
        """Stop the run's other chunks: this one failed (they stop before their next item)."""
        client = self.state.redis
        retention = max(1, round(self.settings.bots.retention))
        try:
            client.set(self._key("abort"), reason.encode(), ex=retention)
        except Exception as exc:  # (the others run to their end instead)
            _LOG.warning("run %s: the other chunks were not stopped: %s", self.run_id, exc)

    def _work(
        self, bot: Any, ctx: RunContext[Any], items: Sequence[Item], done: set[int]
    ) -> tuple[RunStatus, str | None]:
        policy: RetryPolicy = getattr(bot, "retry", None) or RetryPolicy.court_site()
        try:
            try:
                self._attempts(policy, "setup", lambda: bot.setup(ctx))
                for item in items:
                    if item.index in done:
                        continue
                    if self.cancel.is_set():
                        raise _Stop(RunStatus.CANCELLED, None)
                    self._item(bot, ctx, item, policy)
            finally:
                try:
                    bot.teardown(ctx)
                except Exception as exc:
                    self._log("warning", f"teardown failed: {_describe(exc)}", None)
        except _Stop as stop:
            return stop.status, stop.reason
        except (FatalBotError, SoftTimeLimitExceeded) as exc:
            return RunStatus.FAILED, self._fatal(exc)
        except Exception as exc:
            return RunStatus.FAILED, self._fatal(exc)
        if self.counts.failed:
            return RunStatus.COMPLETED_WITH_ERRORS, None
        return RunStatus.COMPLETED, None

    def _item(self, bot: Any, ctx: RunContext[Any], item: Item, policy: RetryPolicy) -> None:
        status: ItemStatus
        data: Mapping[str, Cell]
        reason: str | None
        try:
            outcome = self._attempts(
                policy, f"row {item.row}", lambda: bot.process(item, ctx), row=item.row
            )
        except ItemError as exc:
            status, data, reason = "failed", {}, self.scrubber.scrub(str(exc) or type(exc).__name__)
        except (FatalBotError, SoftTimeLimitExceeded):
            raise
        except Exception as exc:
            status, data, reason = "failed", {}, self.scrubber.scrub(_describe(exc))
        else:
            if not isinstance(outcome, ItemOutcome):
                status, data = "failed", {}
                reason = f"process() returned {type(outcome).__name__}, not an ItemOutcome"
            else:
                status = outcome.status
                data = self.scrubber.scrub_cells(outcome.data)
                reason = None if outcome.message is None else self.scrubber.scrub(outcome.message)
        self._record(ItemRecord(item.index, item.row, status, item.data, data, reason))
        limit = self.parameters.max_failures
        if status == "failed" and limit is not None and self.counts.failed >= limit:
            raise _Stop(
                RunStatus.FAILED,
                f"stopped after {self.counts.failed} failed items (max_failures={limit})",
            )
        if self.lost is not None:
            raise _Stop(RunStatus.FAILED, str(self.lost))

    def _attempts(
        self, policy: RetryPolicy, label: str, call: Any, *, row: int | None = None
    ) -> Any:
        """``call()``, retried inline by ``policy`` (waits cut short by a cancel request)."""
        first = time.monotonic()
        retries = 0
        while True:
            try:
                return call()
            except Exception as exc:
                delay = policy.next_delay(retries, time.monotonic() - first, exc)
                if delay is None or self.cancel.is_set():
                    raise
                retries += 1
                self._log(
                    "warning",
                    f"{label}: attempt {retries} of {policy.attempts} failed "
                    f"({_describe(exc)}); retrying in {delay:.1f} s",
                    row,
                )
                if self.cancel.wait(delay):
                    raise

    # -- records and events -------------------------------------------------------------------

    def _record(self, record: ItemRecord) -> None:
        counts = self.counts
        if record.status == "succeeded":
            counts = dataclasses.replace(counts, succeeded=counts.succeeded + 1)
            level: LogLevel = "success"
        elif record.status == "failed":
            counts = dataclasses.replace(counts, failed=counts.failed + 1)
            level = "error"
        else:
            counts = dataclasses.replace(counts, skipped=counts.skipped + 1)
            level = "info"
        self.counts = counts
        self.records.append(record)
        line = checkpoint_line(record)
        chunked = self.chunk is not None
        event = encode_event(
            "item",
            time=time.time(),
            level=level,
            message=record.reason,
            row=record.row,
            counts=None if chunked else counts,
        )
        assert self.recorder is not None
        self.recorder.item(line, event, count=record.status if chunked else None)
        now = time.monotonic()
        if now >= self._next_progress:
            self._progress(now)

    def _progress(self, now: float) -> None:
        self._next_progress = now + PROGRESS_EVERY
        assert self.recorder is not None
        if self.chunk is None:
            counts = self.counts
            self.recorder.state(_count_fields(counts))
        else:
            # Chunks count in the state hash; read the run's counters and tell them.
            counts = self.counts = self._shared_counts()
            self.recorder.event(encode_event("progress", time=time.time(), counts=counts))
        self.task.update_state(
            task_id=self.task_id,
            state="PROGRESS",
            meta={
                "run_id": self.run_id,
                "total": counts.total,
                "succeeded": counts.succeeded,
                "failed": counts.failed,
                "skipped": counts.skipped,
                "remaining": counts.remaining,
            },
        )

    def _shared_counts(self) -> RunCounts:
        """The run's counters in its state hash, as the chunks add to them."""
        client = self.state.redis
        assert self.recorder is not None
        self.recorder.flush()
        with self.state.redis_errors():
            raw: Any = client.hmget(
                self._key("state"),
                ["succeeded", "failed", "skipped"],
            )
        succeeded, failed, skipped = (int(value or 0) for value in raw)
        return RunCounts(self.counts.total, succeeded, failed, skipped)

    def _log(self, level: LogLevel, message: str, row: int | None) -> None:
        text = self.scrubber.scrub(str(message))
        _LOG.log(
            _PYTHON_LEVEL.get(level, logging.ERROR),
            "run %s%s: %s",
            self.run_id,
            "" if row is None else f" row {row}",
            text,
        )
        if self.recorder is not None:
            self.recorder.event(
                encode_event("log", time=time.time(), level=level, message=text, row=row)
            )

    def _started(self, resumed_at: int) -> None:
        assert self.recorder is not None
        self.recorder.state(
            {
                "bot": self.bot_id,
                "user_id": msgspec.json.encode(self.user_id),
                "task_id": self.task_id,
                "status": "running",
                "started_at": self.started_at.isoformat(),
                **_count_fields(self.counts),
            }
        )
        self.recorder.event(
            encode_event(
                "started",
                time=time.time(),
                counts=self.counts,
                data={
                    "bot": self.bot_id,
                    "user_id": self.user_id,
                    "task_id": self.task_id,
                    "total": self.counts.total,
                    "resumed_at": resumed_at,
                },
            )
        )
        if resumed_at:
            self._log("info", f"resumed after {resumed_at} of {self.counts.total} items done", None)
        else:
            notify_started(
                self.app,
                run_id=self.run_id,
                bot=self.bot_id,
                title=self.title,
                parameters=self.parameters,
                total=self.counts.total,
                started_at=self.started_at,
                user_id=self.user_id,
            )
        _LOG.info(
            "run %s of %s started: %d items (%d done before)",
            self.run_id,
            self.bot_id,
            self.counts.total,
            resumed_at,
        )
        self._progress(time.monotonic())

    def _finish(
        self, status: RunStatus, error: str | None, report: str | None, *, store: bool = True
    ) -> BotRunResult:
        error = None if error is None else self.scrubber.scrub(error)
        result = BotRunResult(
            run_id=self.run_id,
            bot=self.bot_id,
            user_id=self.user_id,
            status=status,
            counts=self.counts,
            started_at=self.started_at,
            finished_at=dt.datetime.now(dt.timezone.utc),
            report=report,
            error=error,
            error_sample=[
                f"row {record.row}: {record.reason}"
                for record in self.records
                if record.status == "failed"
            ][:ERROR_SAMPLE],
        )
        fields: dict[str, str | bytes] = {
            "bot": self.bot_id,
            "user_id": msgspec.json.encode(self.user_id),
            "task_id": self.task_id,
            "status": status.value,
            "started_at": result.started_at.isoformat(),
            "finished_at": result.finished_at.isoformat(),
            "report": report or "",
            "error": error or "",
            **_count_fields(self.counts),
        }
        if store:
            fields["result"] = msgspec.json.encode(encode(result))
        recorder = self.recorder or Recorder(self.app, self.run_id)
        recorder.state(fields)
        recorder.event(
            encode_event(
                "finished",
                time=time.time(),
                counts=self.counts,
                status=status,
                data={"report": report, "error": error},
            )
        )
        recorder.flush()
        if self.recorder is None:
            recorder.close()
        notify_finished(
            self.app,
            result,
            title=self.title,
            parameters=self.parameters,
            cancelled_by=self._cancelled_by(),
        )
        _LOG.info(
            "run %s of %s ended %s: %d succeeded, %d failed, %d skipped of %d%s",
            self.run_id,
            self.bot_id,
            status.value,
            self.counts.succeeded,
            self.counts.failed,
            self.counts.skipped,
            self.counts.total,
            f" ({error})" if error else "",
        )
        return result

    def _fatal(self, exc: BaseException) -> str:
        if isinstance(exc, SoftTimeLimitExceeded):
            reason = "the task's soft time limit was reached"
        elif isinstance(exc, FatalBotError):
            reason = str(exc) or type(exc).__name__
        else:
            reason = f"setup failed: {_describe(exc)}"
        reason = self.scrubber.scrub(reason)
        self._log("error", reason, None)
        return reason

    # -- report -------------------------------------------------------------------------------

    def _report(self, items: Sequence[Item], status: RunStatus, error: str | None) -> str | None:
        columns: dict[str, None] = {}
        for item in items:
            columns.update(dict.fromkeys(item.data))
        run = ReportRun(
            run_id=self.run_id,
            bot=self.bot_id,
            user_id=self.user_id,
            status=status,
            counts=self.counts,
            started_at=self.started_at,
            finished_at=dt.datetime.now(dt.timezone.utc),
            error=error,
            columns=list(columns),
        )
        try:
            archive = write_report(run, self.records, self._output_dir() / "report")
            location = report_store(self.app).store(self.run_id, archive)
        except Exception as exc:
            self._log("error", f"the report was not written: {_describe(exc)}", None)
            return None
        self._log("info", f"report: {location}", None)
        return location

    def _load_checkpoint(self, items: Sequence[Item]) -> set[int]:
        self.records, self.counts = load_checkpoint(self.app, self.run_id, items, self.counts)
        return {record.index for record in self.records}

    # -- checkpoint, lease, cancel ------------------------------------------------------------

    def _stored_result(self) -> BotRunResult | None:
        client = self.state.redis
        with self.state.redis_errors():
            raw: Any = client.hget(self._key("state"), "result")
        return None if raw is None else msgspec.json.decode(raw, type=BotRunResult)

    def _key(self, part: RunPart) -> str:
        return self.state.keys.run(self.run_id, part)

    def _take_lease(self, key: str | None = None) -> Lease:
        return take_run_lease(
            self.app, key or run_lease_name(self.run_id), self.run_id, self._on_lost
        )

    def _on_lost(self, error: LeaseLostError) -> None:
        self.lost = error
        self.cancel.set()

    def _release(self, run_lease: Lease) -> None:
        try:
            run_lease.release()
        except Exception as exc:
            _LOG.warning("run %s: the lease was not released: %s", self.run_id, exc)

    def _cancel_requested(self) -> bool:
        client = self.state.redis
        with self.state.redis_errors():
            return bool(client.exists(self._key("cancel")))

    def _cancelled_by(self) -> str | None:
        client = self.state.redis
        try:
            raw: Any = client.get(self._key("cancel"))
        except Exception:
            return None
        return raw.decode(errors="replace") or None if raw else None

    def _watch_cancel(self) -> None:
        client = self.state.redis
        cancel = self._key("cancel")
        abort = self._key("abort")
        warned = False
        while not self._stop_watching.wait(CANCEL_POLL):
            try:
                if client.exists(cancel, abort):
                    self.cancel.set()
                    self._log("warning", "cancel requested: stopping before the next item", None)
                    return
            except Exception as exc:
                if not warned:
                    _LOG.warning("run %s: cannot read its cancel request: %s", self.run_id, exc)
                    warned = True

    def _close_recorder(self) -> None:
        recorder, self.recorder = self.recorder, None
        if recorder is None:
            return
        try:
            recorder.close()
        except Exception as exc:
            _LOG.warning("run %s: its last records may be lost: %s", self.run_id, exc)

    # -- initialisation -----------------------------------------------------------------------

    def _resolve_secrets(self) -> dict[str, Secret]:
        ref = self.parameters.credentials
        if ref is None:
            return {}
        return {"credentials": resolve_secret(ref, secret_providers(self.app))}

    def _output_dir(self) -> Path:
        folder = run_folder(self.app, self.run_id)
        folder.mkdir(parents=True, exist_ok=True)
        return folder


def _count_fields(counts: RunCounts) -> dict[str, str | bytes]:
    return {
        "total": str(counts.total),
        "succeeded": str(counts.succeeded),
        "failed": str(counts.failed),
        "skipped": str(counts.skipped),
    }


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
