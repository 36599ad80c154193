"""Following a run from the CLI: read its events until ``finished``, show them, handle Ctrl-C.

Used by ``run`` (with the task's handle, to notice a run the worker refused before it wrote
any event) and ``runs watch`` (replay from the first event, then live).
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING

import click

from crawjud_tasks._cli._loader import fail
from crawjud_tasks._cli._progress import Progress, exit_code
from crawjud_tasks.bots import RunEvent, cancel_run, run_events, run_state
from crawjud_tasks.bots.contracts import BotRunResult, RunStatus
from crawjud_tasks.errors import CrawjudTasksError, ResultTimeoutError

if TYPE_CHECKING:
    from celery import Celery

    from crawjud_tasks import TypedResult

__all__ = ["EXIT_REFUSED", "EXIT_STOPPED_WATCHING", "follow_run", "watch_hint"]

#: The run was refused (or another error).
EXIT_REFUSED = 1
#: Following stopped on Ctrl-C; the run goes on.
EXIT_STOPPED_WATCHING = 130
#: Seconds of one round of reading, between two looks at the task and the deadline.
ROUND = 1.0
#: Seconds each blocking read waits.
BLOCK = 0.5
#: Seconds without any event before saying that no worker has started the run.
QUIET = 3.0


def watch_hint(run_id: str) -> str:
    """How to follow the run again."""
    return f"follow it with: crawjud-tasks runs watch {run_id}"


def _say(text: str) -> None:
    """A message about the following itself (standard error, apart from the run's output)."""
    click.echo(text, err=True)


def follow_run(
    app: Celery,
    run_id: str,
    progress: Progress,
    *,
    handle: TypedResult[BotRunResult] | None = None,
    timeout: float | None = None,
) -> int:
    """Show run ``run_id``'s events until it finishes; the CLI's exit code.

    Raises:
        click.ClickException: the run was refused (exit code 1), or Redis did not answer.
    """
    try:
        return _Follower(app, run_id, progress, handle, timeout).follow()
    except CrawjudTasksError as exc:
        progress.close()
        raise fail(str(exc)) from exc


class _Follower:
    def __init__(
        self,
        app: Celery,
        run_id: str,
        progress: Progress,
        handle: TypedResult[BotRunResult] | None,
        timeout: float | None,
    ) -> None:
        self.app = app
        self.run_id = run_id
        self.progress = progress
        self.handle = handle
        self.started = time.monotonic()
        self.deadline = None if timeout is None else self.started + timeout
        self.timeout = timeout
        self.last: str | None = None
        self.seen = False
        self.said_waiting = False
        self.cancel_asked = False
        #: The ``finished`` event, once read (a Ctrl-C after it must not wait for another).
        self.finished: RunEvent | None = None

    def follow(self) -> int:
        while True:
            try:
                if self.finished is None:
                    self._round()
                if self.finished is not None:
                    return self._ended(self.finished)
                code = self._checks()
                if code is not None:
                    return code
            except KeyboardInterrupt:
                code = self._interrupted()
                if code is not None:
                    return code

    # -- reading ------------------------------------------------------------------------------

    def _round(self, *, follow: bool = True) -> RunEvent | None:
        """Read (and show) events for one round; the ``finished`` event if it came."""
        events = run_events(
            self.app,
            self.run_id,
            follow=follow,
            after=self.last,
            block=BLOCK,
            timeout=ROUND if follow else None,
        )
        try:
            for event in events:
                self.last = event.id
                self.seen = True
                self.progress.event(event)
                if event.kind == "finished":
                    self.finished = event
                    return event
        except ResultTimeoutError:
            pass
        return None

    def _checks(self) -> int | None:
        """Between two rounds: a task that ended without a ``finished`` event, the deadline."""
        if self.handle is not None and self.handle.ready():
            return self._task_ended(self.handle)
        if not self.seen and not self.said_waiting:
            self._say_waiting()
        if self.deadline is not None and time.monotonic() >= self.deadline:
            self.progress.close()
            _say(
                f"stopped following run {self.run_id} after {self.timeout:g} s (--timeout); "
                f"it goes on: {watch_hint(self.run_id)}"
            )
            return EXIT_REFUSED
        return None

    def _say_waiting(self) -> None:
        if self.handle is None:
            if run_state(self.app, self.run_id) is None:
                self.said_waiting = True
                _say(
                    f"run {self.run_id} is not known yet: it is queued, or the id is wrong; "
                    "waiting for it to start (Ctrl-C to stop)"
                )
        elif time.monotonic() - self.started >= QUIET:
            self.said_waiting = True
            _say(
                f"no worker has started run {self.run_id} yet: waiting (is a worker consuming "
                "the bots queue?)"
            )

    def _task_ended(self, handle: TypedResult[BotRunResult]) -> int:
        """The task ended and no ``finished`` event was seen: read the last events, or tell why."""
        finished = self._round(follow=False)
        if finished is not None:
            return self._ended(finished)
        self.progress.close()
        try:
            result = handle.get(timeout=10)
        except CrawjudTasksError as exc:
            # Refused before it started (unknown bot, a duplicate run id...).
            raise fail(f"run {self.run_id} was refused: {exc}") from exc
        # It ended before (a second dispatch of the same run id) and its events are gone.
        event = RunEvent(
            id=self.last or "0-0",
            run_id=self.run_id,
            kind="finished",
            time=result.finished_at,
            counts=result.counts,
            status=result.status,
            data={"report": result.report, "error": result.error},
        )
        self.progress.summary(self.run_id, event, result)
        return exit_code(result.status)

    def _ended(self, finished: RunEvent) -> int:
        state = run_state(self.app, self.run_id)
        result = state.result if state is not None else None
        if result is None and finished.status is RunStatus.FAILED and not self.progress.started:
            # Refused by the worker before it started: no result is stored, no item was run.
            error = finished.data.get("error") or "refused by the worker"
            raise fail(f"run {self.run_id} was refused: {error}")
        self.progress.summary(self.run_id, finished, result)
        status = finished.status or (result.status if result else RunStatus.FAILED)
        return exit_code(status)

    # -- Ctrl-C -------------------------------------------------------------------------------

    def _interrupted(self) -> int | None:
        """Ctrl-C: ask whether to cancel the run; ``None`` to follow on until it stops."""
        self.progress.close()
        if self.cancel_asked:
            _say(
                f"stopped watching; the cancel request of run {self.run_id} stands: "
                f"{watch_hint(self.run_id)}"
            )
            return EXIT_STOPPED_WATCHING
        if not _stdin_is_a_terminal():
            _say("standard input is not a terminal: not asking whether to cancel the run")
        elif _confirm_cancel(self.run_id):
            before = cancel_run(self.app, self.run_id)
            self.cancel_asked = True
            if before is not None and before.finished:
                _say(f"run {self.run_id} had already ended ({before.phase})")
            else:
                _say(f"cancel requested: following run {self.run_id} until it stops")
            self.deadline = None
            return None
        _say(f"stopped watching; run {self.run_id} goes on: {watch_hint(self.run_id)}")
        return EXIT_STOPPED_WATCHING


def _stdin_is_a_terminal() -> bool:
    try:
        return sys.stdin is not None and sys.stdin.isatty()
    except (ValueError, OSError):  # closed
        return False


def _confirm_cancel(run_id: str) -> bool:
    try:
        return click.confirm(f"\nCancel run {run_id}?", default=False, err=True)
    except click.Abort:  # Ctrl-C or end of input at the prompt: just stop watching
        click.echo("", err=True)
        return False
