"""The skeleton of a run's task: what ``execute_bot``, ``run_chunk`` and ``finish_run`` share.

:meth:`Run.stages` is the one way into a run: its stored result (a run that ended answers a
second delivery with it), the bot, the lease, the run's store; on the way out the store is
flushed and the lease released. :class:`Run` also holds what the stages share: the counters,
the records, the scrubber, the cancel event, the run's log and its progress.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import logging
import threading
import time
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crawjud_tasks._keys import run_lease_name
from crawjud_tasks._state import app_state
from crawjud_tasks.bots._checkpoint import saved_outcomes
from crawjud_tasks.bots._events import encode_event
from crawjud_tasks.bots._extensions import secret_providers
from crawjud_tasks.bots._fit import bot_options, check_columns, checkpoint_class
from crawjud_tasks.bots._index import InputIndex, build_index, index_items, read_index
from crawjud_tasks.bots._inputs import InputLimits, open_items
from crawjud_tasks.bots._parts import PartWriter, part_path
from crawjud_tasks.bots._registry import BotFactory, find_bot
from crawjud_tasks.bots._run_lease import take_run_lease
from crawjud_tasks.bots._secrets import Scrubber, resolve_secret
from crawjud_tasks.bots._store import RunStore
from crawjud_tasks.bots.contracts import BotParameters, BotRunResult, RunCounts

if TYPE_CHECKING:
    from celery import Celery

    from crawjud_tasks._lease import Lease
    from crawjud_tasks._secret import Secret
    from crawjud_tasks.bots._bot import Item
    from crawjud_tasks.bots._context import LogLevel
    from crawjud_tasks.errors import LeaseLostError

__all__ = ["PROGRESS_EVERY", "Prepared", "Run", "Stages", "describe", "run_folder"]

_LOG = logging.getLogger("crawjud_tasks.bots")
#: Seconds between two updates of the run's state (Redis hash and the task's PROGRESS state).
PROGRESS_EVERY = 1.0
_PYTHON_LEVEL = {"info": logging.INFO, "success": logging.INFO, "warning": logging.WARNING}


def run_folder(app: Celery, run_id: str) -> Path:
    """The working folder of run ``run_id`` on this machine."""
    settings = app_state(app).settings
    root = settings.bots.runs_dir or settings.resolved_data_dir / "runs"
    return Path(root).expanduser() / run_id.replace(":", "_")


def describe(exc: BaseException) -> str:
    """``Type: message`` of an exception (its type alone when it has no message)."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


@dataclasses.dataclass(frozen=True, slots=True)
class Stages:
    """What :meth:`Run.stages` found: the run's stored result, or the bot to run."""

    #: The result of a run that ended before (nothing else was done).
    stored: BotRunResult | None
    #: The bot's factory (``None`` with a stored result).
    factory: BotFactory | None


@dataclasses.dataclass(frozen=True, slots=True)
class Prepared:
    """A bot made and checked against its input, with the run's indexed input and secrets."""

    bot: Any
    options: Any
    index: InputIndex
    secrets: dict[str, Secret]


class Run:
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
        chunk: int | None = None,
    ) -> None:
        self.app = app
        self.task = task
        #: The id of the run's ``execute_bot`` task (whose result is the run's result).
        self.task_id = task_id or str(task.request.id)
        self.run_id = run_id or parameters.run_id or self.task_id
        #: The chunk this task processes, in a parallel run.
        self.chunk = chunk
        self.bot_id = bot_id
        self.user_id = user_id
        self.parameters = parameters
        self.settings = app_state(app).settings
        self.store = RunStore(app, self.run_id, chunk)
        self.cancel = threading.Event()
        self.lost: LeaseLostError | None = None
        self.scrubber = Scrubber(())
        self.counts = RunCounts()
        #: This task's report part, once it began to process items.
        self.part: PartWriter | None = None
        #: The first few failed items' reasons (``row N: reason``).
        self.error_sample: list[str] = []
        self.started_at = dt.datetime.now(dt.timezone.utc)
        self.title = ""
        self.next_progress = 0.0

    # -- the skeleton -------------------------------------------------------------------------

    @contextlib.contextmanager
    def stages(self, *, stored: bool = True) -> Generator[Stages]:
        """Enter the run: its stored result (with ``stored``: a run that ended is not run again,
        read before and after the lease), the bot, the lease (the chunk's in a chunk), the
        store; on the way out, the store is flushed and the lease released.

        Raises:
            UnknownBotError: no bot has this id.
            DuplicateRunError: a live holder has the lease.
            BrokerUnavailableError: Redis did not answer.
        """
        if stored and (result := self.store.stored_result()) is not None:
            _LOG.info(
                "run %s ended before (%s); its result is returned", self.run_id, result.status.value
            )
            yield Stages(result, None)
            return
        factory = find_bot(self.app, self.bot_id)
        lease = self._take_lease()
        try:
            # It may have ended while we waited for the lease.
            result = self.store.stored_result() if stored else None
            try:
                yield Stages(result, None if result is not None else factory)
            finally:
                self._close_store()
        finally:
            self._release(lease)

    def prepare(self, factory: BotFactory) -> Prepared:
        """Make the bot, check its options, index the input (once a run: a delivery or chunk
        after the first reads the index), resolve the secrets.

        Raises:
            BotParameterError: an option, the input or its columns do not fit the bot.
            SecretNotFoundError: a secret reference is unknown.
        """
        bot = factory()
        self.title = str(getattr(bot, "title", "") or "")
        options = bot_options(self.bot_id, bot, self.parameters.options)
        mode = checkpoint_class(self.bot_id, bot)
        bots = self.settings.bots
        if mode == "batch":
            self.store.checkpoint_every(bots.checkpoint_batch, bots.checkpoint_window)
        folder = self.output_dir() / "input"
        index = read_index(folder)
        if index is None:
            source = open_items(
                self.parameters.input, roots=bots.allowed_roots, limits=InputLimits.of(bots)
            )
            check_columns(self.bot_id, bot, source.columns)
            index = build_index(folder, source)
        else:
            check_columns(self.bot_id, bot, index.columns)
        ref = self.parameters.credentials
        secrets = (
            {} if ref is None else {"credentials": resolve_secret(ref, secret_providers(self.app))}
        )
        self.scrubber = Scrubber(secrets.values())
        self.counts = dataclasses.replace(self.counts, total=index.total)
        return Prepared(bot, options, index, secrets)

    def resume(self, prepared: Prepared, start: int, stop: int) -> int:
        """Open this task's report part, rewritten from the checkpoint (whose records are added
        to the counts); how many of the items ``start`` to ``stop`` were done before."""
        done = min(self.store.checkpoint_length(), stop - start)
        part = self.part = PartWriter(part_path(self.output_dir(), self.chunk))
        if done:
            part.rewrite(
                saved_outcomes(self.store.checkpoint()),
                index_items(self.output_dir() / "input", prepared.index, start, start + done),
            )
        self.counts = dataclasses.replace(part.counts, total=self.counts.total)
        return done

    def items(self, prepared: Prepared, start: int, stop: int) -> Iterator[Item]:
        """The items ``start`` to ``stop``, read from the run's index."""
        return index_items(self.output_dir() / "input", prepared.index, start, stop)

    def output_dir(self) -> Path:
        """The run's working folder, made if missing."""
        folder = run_folder(self.app, self.run_id)
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    # -- the run's log and progress -----------------------------------------------------------

    def log(self, level: LogLevel, message: str, row: int | None) -> None:
        """A line of the run's log: logged here and appended to its events (scrubbed)."""
        text = self.scrubber.scrub(str(message))
        _LOG.log(
            _PYTHON_LEVEL.get(level, logging.ERROR),
            "run %s%s: %s",
            self.run_id,
            "" if row is None else f" row {row}",
            text,
        )
        self.store.event(encode_event("log", time=time.time(), level=level, message=text, row=row))

    def progress(self, now: float) -> None:
        """Tell the counts: the state hash (a chunk reads the run's instead, and emits them)
        and the task's PROGRESS state."""
        self.next_progress = now + PROGRESS_EVERY
        if self.chunk is None:
            counts = self.counts
            self.store.write_counts(counts)
        else:
            self.store.touch_checkpoint()
            counts = self.counts = self.store.shared_counts(self.counts.total)
            self.store.event(encode_event("progress", time=time.time(), counts=counts))
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

    def write_state(
        self, status: str, result: BotRunResult | None = None, *, store_result: bool = True
    ) -> None:
        """The run's state hash, with this run's identity and counts."""
        self.store.write_state(
            bot=self.bot_id,
            user_id=self.user_id,
            task_id=self.task_id,
            status=status,
            started_at=self.started_at,
            counts=self.counts,
            result=result,
            store_result=store_result,
        )

    # -- lease --------------------------------------------------------------------------------

    def _take_lease(self) -> Lease:
        return take_run_lease(
            self.app, run_lease_name(self.run_id, self.chunk), self.run_id, self._on_lost
        )

    def _on_lost(self, error: LeaseLostError) -> None:
        self.lost = error
        self.cancel.set()

    def _release(self, lease: Lease) -> None:
        try:
            lease.release()
        except Exception as exc:
            _LOG.warning("run %s: the lease was not released: %s", self.run_id, exc)

    def _close_store(self) -> None:
        if self.part is not None:
            self.part.close()
        try:
            self.store.close()
        except Exception as exc:
            _LOG.warning("run %s: its last records may be lost: %s", self.run_id, exc)
