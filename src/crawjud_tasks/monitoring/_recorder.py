"""One process's metric deltas, counted in memory by the signal handlers and drained per flush.

Every count is a few list and dict operations under a lock that only the flush thread contends
for, with at most one clock read per task start and end; nothing here does I/O. The flush takes
the deltas with :meth:`Recorder.drain` and, when Redis did not take them, gives them back with
:meth:`Recorder.restore`, which keeps at most ``max_series`` series and counts what it had to
drop.
"""

from __future__ import annotations

import bisect
import dataclasses
import threading
import time
from typing import Final

from crawjud_tasks.monitoring._series import COUNTERS, QUEUE_WAIT_BUCKETS, RUNTIME_BUCKETS

__all__ = ["OTHER_EXCEPTION", "ActiveEntry", "Drained", "Recorder", "Series"]

SENT, RECEIVED, STARTED, SUCCEEDED, FAILED, RETRIED, REJECTED, REVOKED = range(len(COUNTERS))
#: The ``exception`` label of failures past a task's first ``top_exceptions`` classes.
OTHER_EXCEPTION: Final = "other"
#: Celery's states at ``task_postrun`` and the counter each adds to.
_FINISHED: Final = {"SUCCESS": SUCCEEDED, "RETRY": RETRIED, "REJECTED": REJECTED}

#: (task name, queue, wall-clock start, publish time, its series, the drain it belongs to)
ActiveEntry = tuple[str, str, float, float | None, "Series", int]


class Series:
    """The deltas of one (task name, queue) since the last flush."""

    __slots__ = ("counts", "failed", "qw", "qw_sum", "rt", "rt_sum")

    def __init__(self) -> None:
        self.counts = [0] * len(COUNTERS)
        #: Failures by exception class name.
        self.failed: dict[str, int] = {}
        #: Runtime observations per bucket (non-cumulative; the last one is +Inf).
        self.rt = [0] * (len(RUNTIME_BUCKETS) + 1)
        self.rt_sum = 0.0
        self.qw = [0] * (len(QUEUE_WAIT_BUCKETS) + 1)
        self.qw_sum = 0.0

    def merge(self, other: Series) -> None:
        """Add ``other``'s deltas to these."""
        for index, value in enumerate(other.counts):
            self.counts[index] += value
        for name, value in other.failed.items():
            self.failed[name] = self.failed.get(name, 0) + value
        for index, value in enumerate(other.rt):
            self.rt[index] += value
        for index, value in enumerate(other.qw):
            self.qw[index] += value
        self.rt_sum += other.rt_sum
        self.qw_sum += other.qw_sum

    def events(self) -> int:
        """How many events these deltas hold (what dropping them loses)."""
        return sum(self.counts)


@dataclasses.dataclass(frozen=True, slots=True)
class Drained:
    """What one flush writes: the deltas, and the process's state at that moment."""

    series: dict[tuple[str, str], Series]
    active: dict[str, ActiveEntry]
    dropped: int
    last_received: float | None
    #: ``{bot: [items processed, items failed]}`` of the runs that ended.
    bot_items: dict[str, list[int]] = dataclasses.field(default_factory=dict[str, list[int]])


class Recorder:
    """Counts one process's task events (thread-safe; the flush runs in another thread)."""

    def __init__(self, *, top_exceptions: int, max_series: int, hostname_labels: bool) -> None:
        self.top_exceptions = top_exceptions
        self.max_series = max_series
        self.hostname_labels = hostname_labels
        #: The worker's node name (``celery@host``), learnt from the first task it runs.
        self.node: str | None = None
        self._lock = threading.Lock()
        self._series: dict[tuple[str, str], Series] = {}
        self._active: dict[str, ActiveEntry] = {}
        self._exceptions: dict[str, set[str]] = {}
        self._dropped = 0
        self._bot_items: dict[str, list[int]] = {}
        #: Messages received, and how many there were when ``last_received`` was last read.
        #: Drains so far: a running task's series is still current while this has not moved.
        self._drains = 0
        self._received = 0
        self._received_seen = 0
        self._last_received: float | None = None

    def _get(self, name: str, queue: str) -> Series:
        # The per-task counts try ``self._series.get`` inline first (a Series is always true).
        series = self._series.get((name, queue))
        if series is None:
            series = self._series[name, queue] = Series()
        return series

    def count(self, slot: int, name: str, queue: str) -> None:
        """Add one to counter ``slot`` (an index of ``COUNTERS``) of ``name`` on ``queue``."""
        with self._lock:
            self._get(name, queue).counts[slot] += 1

    def received(self, name: str, queue: str) -> None:
        """This process took a message of ``name`` off ``queue`` (no clock read: the time is
        taken when :attr:`last_received` is read and the count moved)."""
        with self._lock:
            (self._series.get((name, queue)) or self._get(name, queue)).counts[RECEIVED] += 1
            self._received += 1

    def started(  # noqa: PLR0917  (the hot path: no argument object to build)
        self, task_id: str, name: str, queue: str, sent: float | None, due: float, now: float
    ) -> None:
        """A task started at ``now``; ``sent``: when it was published, if known, and ``due``:
        when it could run (later than ``sent`` for a countdown or a retry back-off)."""
        with self._lock:
            series = self._series.get((name, queue)) or self._get(name, queue)
            series.counts[STARTED] += 1
            if sent is not None:
                wait = now - due if now > due else 0.0
                series.qw[bisect.bisect_left(QUEUE_WAIT_BUCKETS, wait)] += 1
                series.qw_sum += wait
            self._active[task_id] = (name, queue, now, sent, series, self._drains)

    def bot_run(self, bot: str, processed: int, failed: int) -> None:
        """A bot run ended with ``processed`` items done, ``failed`` of them failed."""
        with self._lock:
            counts = self._bot_items.setdefault(bot, [0, 0])
            counts[0] += processed
            counts[1] += failed

    def finished(self, task_id: str, state: str, exception: str | None) -> None:
        """A task that :meth:`started` ended in Celery ``state`` (``exception``: its class)."""
        end = time.time()
        with self._lock:
            entry = self._active.pop(task_id, None)
            if entry is None:
                return
            name, queue, start, _, series, drains = entry
            if drains != self._drains:
                series = self._get(name, queue)  # drained since the task started
            slot = _FINISHED.get(state)
            if slot is not None:
                series.counts[slot] += 1
            elif state == "FAILURE":
                series.counts[FAILED] += 1
                label = self._exception_label(name, exception or "Exception")
                series.failed[label] = series.failed.get(label, 0) + 1
            else:
                return  # IGNORED, REVOKED...: no runtime to observe
            runtime = end - start if end > start else 0.0
            series.rt[bisect.bisect_left(RUNTIME_BUCKETS, runtime)] += 1
            series.rt_sum += runtime

    def _exception_label(self, name: str, exception: str) -> str:
        seen = self._exceptions.setdefault(name, set())
        if exception in seen:
            return exception
        if len(seen) < self.top_exceptions:
            seen.add(exception)
            return exception
        return OTHER_EXCEPTION

    @property
    def last_received(self) -> float | None:
        """When this process last received a task message (seconds since the epoch), as of
        the last time this was read (the health writer and the flush read it every interval)."""
        received = self._received
        if received != self._received_seen:
            self._received_seen = received
            self._last_received = time.time()
        return self._last_received

    def active_count(self) -> int:
        """How many tasks this process runs now."""
        return len(self._active)

    def drain(self) -> Drained:
        """Take the deltas counted since the last drain (the counts start again from zero)."""
        last_received = self.last_received
        with self._lock:
            series, self._series = self._series, {}
            self._drains += 1
            items, self._bot_items = self._bot_items, {}
            return Drained(series, dict(self._active), self._dropped, last_received, items)

    def restore(self, drained: Drained) -> None:
        """Give back deltas that could not be written; past ``max_series`` they are dropped."""
        with self._lock:
            for key, series in drained.series.items():
                mine = self._series.get(key)
                if mine is not None:
                    mine.merge(series)
                elif len(self._series) < self.max_series:
                    self._series[key] = series
                else:
                    self._dropped += series.events()
            for bot, (processed, failed) in drained.bot_items.items():
                counts = self._bot_items.setdefault(bot, [0, 0])
                counts[0] += processed
                counts[1] += failed

    def written(self, drained: Drained) -> None:
        """``drained`` reached Redis: its dropped count is recorded there now."""
        with self._lock:
            self._dropped -= drained.dropped
