"""The run's writer: checkpoint records, events and state, sent without waiting for answers
(made by the run's :class:`~crawjud_tasks.bots._store.RunStore`, which names the keys).

Items are sent in windows (``checkpoint = "batch"`` bots): the records and events of the items
done within :attr:`Recorder.window` seconds of the last write, at most :attr:`Recorder.batch`
of them, leave in one socket write (one ``RPUSH`` of their records, their ``XADD`` events, and
in a chunk one ``HINCRBY`` per status: about one answer per item to read); an item that took
longer than the window goes at once, and the run's watcher thread sends a window left waiting
(:meth:`Recorder.tick`). With ``batch`` 1
(``checkpoint = "each"`` bots) each item's record and event leave in one socket write as soon as
the item is done, so that a worker killed right after an item has already handed its checkpoint
to Redis. The answers are read in batches (every :data:`BATCH` commands, and at each flush): an
item costs no round trip.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, final

import redis

if TYPE_CHECKING:
    from crawjud_tasks._state import AppState

__all__ = ["BATCH", "Recorder"]

#: Answers read at once; the commands sent but not yet answered exceed it by one write at most.
BATCH = 512


@final
class Recorder:
    """Sends one run's writes over a connection of its own; see the module docstring."""

    __slots__ = (
        "_buffer",
        "_conn",
        "_counted",
        "_events",
        "_expiring",
        "_items",
        "_last",
        "_lock",
        "_maxlen",
        "_pending",
        "_pool",
        "_records",
        "_retention",
        "_shared",
        "_state",
        "_xadd_head",
        "batch",
        "window",
    )

    def __init__(
        self,
        shared: AppState,
        *,
        items: str,
        events: str,
        state: str,
        expiring: tuple[str, ...],
        events_max: int,
        retention: int,
    ) -> None:
        self._shared = shared
        self._items = items
        self._events = events
        self._state = state
        self._expiring = expiring
        self._maxlen = str(events_max)
        self._retention = str(retention)
        self._pool: Any = shared.redis.connection_pool
        with shared.redis_errors():
            self._conn: Any = self._pool.get_connection()
        self._pending = 0
        self._lock = threading.Lock()
        #: The window's records, their packed events and the counters they add to.
        self._records: list[bytes] = []
        self._buffer: list[bytes] = []
        self._counted: dict[str, int] = {}
        self._xadd_head = b"".join(
            _bulk(arg) for arg in ("XADD", events, "MAXLEN", "~", self._maxlen, "*")
        )
        self._last = time.monotonic()
        #: The most items sent in one write (1: each at once).
        self.batch = 1
        #: Seconds an item's record may wait for the next ones.
        self.window = 0.0

    def item(self, record: bytes, event: Mapping[str, str], *, count: str | None = None) -> None:
        """An item is done: append its record to the checkpoint and its event to the stream,
        and add 1 to the state's counter ``count`` if given (chunks of a parallel run); sent
        now, or with the next items of its window."""
        fields = [_bulk(value) for pair in event.items() for value in pair]
        xadd = b"*%d\r\n%s%s" % (6 + len(fields), self._xadd_head, b"".join(fields))
        with self._lock:
            self._buffer.append(xadd)
            self._records.append(record)
            if count is not None:
                self._counted[count] = self._counted.get(count, 0) + 1
            now = time.monotonic()
            if len(self._records) >= self.batch or now - self._last >= self.window:
                self._write(now)

    def tick(self) -> None:
        """Send the items waiting, if their window has passed."""
        with self._lock:
            now = time.monotonic()
            if self._records and now - self._last >= self.window:
                self._write(now)

    def event(self, event: Mapping[str, str]) -> None:
        """Append an event to the stream."""
        self._send((self._xadd(event),))

    def state(self, fields: Mapping[str, str | bytes]) -> None:
        """Update the run's state hash and push every record's expiry back to the retention."""
        flat: list[str | bytes] = []
        for name, value in fields.items():
            flat += (name, value)
        commands: list[tuple[Any, ...]] = [("HSET", self._state, *flat)]
        commands += [("EXPIRE", key, self._retention) for key in self._expiring]
        self._send(tuple(commands))

    def expire(self, key: str) -> None:
        """Push ``key``'s expiry back to the retention."""
        self._send((("EXPIRE", key, self._retention),))

    def flush(self) -> None:
        """Wait for the answers to everything sent; raise the first error among them.

        Raises:
            BrokerUnavailableError: Redis did not answer.
        """
        with self._lock:
            if self._records:
                self._write(time.monotonic())
            with self._shared.redis_errors():
                self._drain()

    def close(self) -> None:
        """Flush, then give the connection back (dropped if it failed)."""
        try:
            self.flush()
        finally:
            self._pool.release(self._conn)

    def _xadd(self, event: Mapping[str, str]) -> tuple[Any, ...]:
        flat: list[str] = []
        for name, value in event.items():
            flat += (name, value)
        return ("XADD", self._events, "MAXLEN", "~", self._maxlen, "*", *flat)

    def _send(self, commands: tuple[tuple[Any, ...], ...]) -> None:
        """Send ``commands`` now, after the items waiting (the order is kept)."""
        with self._lock:
            self._write(time.monotonic(), commands)

    def _write(self, now: float, commands: tuple[tuple[Any, ...], ...] = ()) -> None:
        """Send the window's items, then ``commands``, in one write (the lock held)."""
        packed: list[bytes] = []
        sent = len(commands)
        if self._records:
            packed.append(_pack(("RPUSH", self._items, *self._records)))
            packed += self._buffer
            packed += [
                _pack(("HINCRBY", self._state, name, added))
                for name, added in self._counted.items()
            ]
            sent += 1 + len(self._buffer) + len(self._counted)
            self._records.clear()
            self._buffer.clear()
            self._counted.clear()
        packed += [_pack(command) for command in commands]
        self._last = now
        with self._shared.redis_errors():
            if self._pending + sent > BATCH:
                self._drain()
            self._conn.send_packed_command([b"".join(packed)], check_health=False)
            self._pending += sent

    def _drain(self) -> None:
        conn = self._conn
        error: Exception | None = None
        while self._pending:
            self._pending -= 1
            try:
                conn.read_response()
            except Exception as exc:
                if error is None:
                    error = exc
                if not _is_answer(exc):
                    self._pending = 0
                    raise
        if error is not None:
            raise error


def _pack(command: tuple[Any, ...]) -> bytes:
    """One command in Redis's protocol (RESP): what redis-py's packer makes, in a fraction of
    its time (the per-item commands are the hot path of a run)."""
    return b"*%d\r\n%s" % (len(command), b"".join(_bulk(arg) for arg in command))


def _bulk(arg: object) -> bytes:
    data = arg if isinstance(arg, bytes) else str(arg).encode()
    return b"$%d\r\n%s\r\n" % (len(data), data)


def _is_answer(exc: Exception) -> bool:
    """Whether ``exc`` is Redis's error answer to one command (the connection is still fine)."""
    return isinstance(exc, redis.ResponseError)
