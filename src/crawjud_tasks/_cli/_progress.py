"""How the CLI shows a run as its events arrive: a progress line, warnings above it, a summary.

On a terminal one line is redrawn in place (``\\r``); otherwise (a pipe, a log file, a test)
plain progress lines are printed at each tenth of the items or every 2 seconds, whichever
comes first. Counts come from any event that carries them (``started``, ``item``,
``progress``, ``finished``); an ``item`` event without counts adds one to its outcome. The rate
is items per second over the last 20 seconds of the run's own clock (the events' times), so a
replayed run shows the rate it had.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import shutil
import time
from collections.abc import Callable
from typing import TextIO

import click

from crawjud_tasks.bots import RunEvent, format_event
from crawjud_tasks.bots.contracts import BotRunResult, RunCounts, RunStatus

__all__ = ["EXIT_CODES", "Progress", "duration", "exit_code"]

#: The exit code of a run that ended with each status.
EXIT_CODES: dict[RunStatus, int] = {
    RunStatus.COMPLETED: 0,
    RunStatus.COMPLETED_WITH_ERRORS: 3,
    RunStatus.CANCELLED: 4,
    RunStatus.FAILED: 5,
}
#: Seconds of the run's clock the rate is measured over.
RATE_WINDOW = 20.0
#: Without a terminal, a progress line at least this often (seconds) while items complete...
PLAIN_EVERY = 2.0
#: ... and at each this share of the items.
PLAIN_STEP = 0.1
#: On a terminal, the line is redrawn at most this often (seconds).
REDRAW_EVERY = 0.1
#: Failed items' reasons shown in the summary.
SUMMARY_ERRORS = 5


def exit_code(status: RunStatus) -> int:
    """The CLI's exit code for a run that ended with ``status``."""
    return EXIT_CODES[status]


def duration(seconds: float) -> str:
    """``4.2 s`` under a minute, else ``H:MM:SS`` / ``M:SS``."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _local(event_time: dt.datetime) -> dt.tzinfo:
    """The local time zone (at the event's time)."""
    return event_time.astimezone().tzinfo or dt.timezone.utc


def _samples() -> collections.deque[tuple[float, int]]:
    """(run time, items done) samples of the rate window."""
    return collections.deque()


@dataclasses.dataclass
class Progress:
    """The renderer of one run's events.

    Args:
        out: Where to write (standard output).
        tty: Redraw one line in place (a terminal) instead of printing plain lines.
        verbose: Print every event, not only warnings, errors and failed items.
        clock: Wall-clock seconds (``time.monotonic``), for the pace of plain lines.
        columns: The terminal's width (default: asked of the terminal at each redraw).
        failed_lines: Failed items printed above the progress line at most (the report has
            them all); ``verbose`` prints every one.
    """

    out: TextIO
    tty: bool
    verbose: bool = False
    clock: Callable[[], float] = time.monotonic
    columns: int | None = None
    failed_lines: int = 20
    counts: RunCounts = dataclasses.field(default_factory=RunCounts)
    started: dt.datetime | None = None
    _samples: collections.deque[tuple[float, int]] = dataclasses.field(default_factory=_samples)
    _drawn: bool = False
    _last_draw: float = float("-inf")
    _last_plain: float = float("-inf")
    _next_step: int = 1
    _failed_shown: int = 0

    # -- events -------------------------------------------------------------------------------

    def event(self, event: RunEvent) -> None:
        """Take one event: update the counts, print what is worth a line, redraw."""
        if event.kind == "started" and self.started is None:
            self.started = event.time
        self._count(event)
        if self.verbose or (self._worth_a_line(event) and self._room_for(event)):
            self.line(self._describe(event))
        if event.kind == "finished":
            self._clear()
            return
        if event.counts is not None or event.kind == "item":
            self._show(force=event.kind == "started")

    def _count(self, event: RunEvent) -> None:
        counts = self.counts
        if event.counts is not None:
            counts = event.counts
        elif event.kind == "item":
            if event.level == "success":
                counts = dataclasses.replace(counts, succeeded=counts.succeeded + 1)
            elif event.level == "error":
                counts = dataclasses.replace(counts, failed=counts.failed + 1)
            else:
                counts = dataclasses.replace(counts, skipped=counts.skipped + 1)
            if counts.done > counts.total:
                counts = dataclasses.replace(counts, total=counts.done)
        else:
            return
        if event.kind == "started" or counts.done < self.counts.done:
            self._samples.clear()  # a (resumed) start, or counts of another source
        self.counts = counts
        now = event.time.timestamp()
        self._samples.append((now, counts.done))
        while len(self._samples) > 2 and now - self._samples[1][0] >= RATE_WINDOW:
            self._samples.popleft()

    def _room_for(self, event: RunEvent) -> bool:
        """Whether a failed item still gets its line; says once when they stop."""
        if event.kind != "item":
            return True
        self._failed_shown += 1
        if self._failed_shown == self.failed_lines + 1:
            self.line("(more failed items are not shown here: the report lists them all)")
        return self._failed_shown <= self.failed_lines

    @staticmethod
    def _worth_a_line(event: RunEvent) -> bool:
        if event.kind == "started":
            return True
        if event.kind == "log":
            return event.level in ("warning", "error")
        return event.kind == "item" and event.level == "error"

    @staticmethod
    def _describe(event: RunEvent) -> str:
        if event.kind == "started":
            data = event.data
            text = f"started {data.get('bot', 'the run')}"
            if "user_id" in data:
                text += f" for user {data['user_id']}"
            text += f": {data.get('total', event.counts.total if event.counts else '?')} items"
            if data.get("resumed_at"):
                text += f" ({data['resumed_at']} done before: resuming)"
            return f"{event.time.astimezone(_local(event.time)):%H:%M:%S} {text}"
        # The progress line shows the counts.
        return format_event(dataclasses.replace(event, counts=None), tz=_local(event.time))

    # -- the progress line --------------------------------------------------------------------

    @property
    def rate(self) -> float | None:
        """Items per second over the window, or ``None`` before two samples apart in time."""
        if len(self._samples) < 2:
            return None
        (t0, d0), (t1, d1) = self._samples[0], self._samples[-1]
        if t1 - t0 <= 0:
            return None
        return (d1 - d0) / (t1 - t0)

    @property
    def eta(self) -> float | None:
        """Seconds left at the current rate."""
        rate = self.rate
        remaining = self.counts.remaining
        if remaining == 0:
            return 0.0
        if not rate:
            return None
        return remaining / rate

    def status_text(self) -> str:
        """``3/6 items (50%), 2 ok, 1 failed, 1 skipped, 4.1 items/s, 0:01 left``."""
        counts = self.counts
        percent = f" ({100 * counts.done // counts.total}%)" if counts.total else ""
        parts = [
            f"{counts.done}/{counts.total} items{percent}",
            f"{counts.succeeded} ok",
            f"{counts.failed} failed",
        ]
        if counts.skipped:
            parts.append(f"{counts.skipped} skipped")
        rate, eta = self.rate, self.eta
        parts.append("-- items/s" if rate is None else f"{rate:.1f} items/s")
        if eta is None:
            parts.append("time left unknown")
        elif counts.remaining:
            parts.append(f"{duration(eta)} left")
        return ", ".join(parts)

    def bar_text(self, columns: int) -> str:
        """The terminal's line: ``[#####-----] 3/6 50% | 2 ok 1 failed | 4.1/s | ETA 0.7 s``."""
        counts = self.counts
        width = 20 if columns >= 80 else 10
        filled = width * counts.done // counts.total if counts.total else 0
        bar = "[" + "#" * filled + "-" * (width - filled) + "]"
        percent = f" {100 * counts.done // counts.total}%" if counts.total else ""
        outcomes = f"{counts.succeeded} ok {counts.failed} failed"
        if counts.skipped:
            outcomes += f" {counts.skipped} skipped"
        rate, eta = self.rate, self.eta
        speed = "--/s" if rate is None else f"{rate:.1f}/s"
        left = "ETA --" if eta is None else f"ETA {duration(eta)}"
        line = f"{bar} {counts.done}/{counts.total}{percent} | {outcomes} | {speed} | {left}"
        return line[: max(1, columns - 1)]

    def _show(self, *, force: bool = False) -> None:
        now = self.clock()
        if self.tty:
            if force or now - self._last_draw >= REDRAW_EVERY or self.counts.remaining == 0:
                self._draw()
            return
        step = self._step_reached()
        if force or step or now - self._last_plain >= PLAIN_EVERY:
            self._last_plain = now
            click.echo(f"progress: {self.status_text()}", file=self.out)

    def _step_reached(self) -> bool:
        counts = self.counts
        if not counts.total:
            return False
        reached = int(counts.done / counts.total / PLAIN_STEP + 1e-9)
        if reached >= self._next_step:
            self._next_step = reached + 1
            return True
        return False

    def _draw(self) -> None:
        columns = self.columns or shutil.get_terminal_size((80, 24)).columns
        line = self.bar_text(columns)
        self.out.write(f"\r{line}\x1b[K")
        self.out.flush()
        self._drawn = True
        self._last_draw = self.clock()

    def _clear(self) -> None:
        if self._drawn:
            self.out.write("\r\x1b[K")
            self.out.flush()
            self._drawn = False

    def line(self, text: str) -> None:
        """Print a line (above the progress line on a terminal)."""
        drawn = self._drawn
        self._clear()
        click.echo(text, file=self.out)
        if drawn:
            self._draw()

    def close(self) -> None:
        """Leave the terminal's line clean (when following stops before the end)."""
        self._clear()

    # -- the end ------------------------------------------------------------------------------

    def summary(self, run_id: str, finished: RunEvent, result: BotRunResult | None) -> None:
        """The run's outcome: status, counts, duration, report, first errors."""
        self._clear()
        status = finished.status or (result.status if result else None)
        counts = result.counts if result is not None else finished.counts or self.counts
        if result is not None:
            took: float | None = result.seconds
        elif self.started is not None:
            took = (finished.time - self.started).total_seconds()
        else:
            took = None
        report = (result.report if result else None) or finished.data.get("report")
        error = (result.error if result else None) or finished.data.get("error")
        head = f"run {run_id} {status.value if status else 'ended'}"
        if took is not None:
            head += f" in {duration(took)}"
        lines = [head]
        items = f"{counts.total} total, {counts.succeeded} succeeded, {counts.failed} failed"
        if counts.skipped:
            items += f", {counts.skipped} skipped"
        if counts.remaining:
            items += f", {counts.remaining} not done"
        lines.append(f"  items:  {items}")
        if error:
            lines.append(f"  error:  {error}")
        lines.append(f"  report: {report or '(none written)'}")
        sample = result.error_sample if result is not None else []
        if sample:
            shown = sample[:SUMMARY_ERRORS]
            lines.append(f"  first errors: {shown[0]}")
            lines.extend(f"                {reason}" for reason in shown[1:])
            more = counts.failed - len(shown)
            if more > 0:
                lines.append(f"                ... and {more} more (see the report)")
        for text in lines:
            click.echo(text, file=self.out)
