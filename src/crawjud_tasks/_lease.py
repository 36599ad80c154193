"""Run leases: at most one live holder of a key across every worker, kept by a heartbeat.

A lease is the Redis key ``<prefix>lease:<key>``, taken with ``SET NX PX`` and holding a random
token and the holder's label (``hostname:pid`` by default). A daemon thread renews it every
``heartbeat`` seconds with one ``EVALSHA`` that extends the key only while it still holds this
holder's token. A holder that dies stops renewing, the key expires after ``ttl`` and the next
holder takes it over. A holder that cannot renew (the key expired or was taken over, or Redis
stayed unreachable for a whole ``ttl``) knows it lost the lease. Release deletes the key only
while it holds this holder's token.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, final

import redis

from crawjud_tasks._checks import is_seconds
from crawjud_tasks._state import app_state
from crawjud_tasks.errors import (
    BrokerUnavailableError,
    LeaseError,
    LeaseHeldError,
    LeaseLostError,
    SettingsError,
)

if TYPE_CHECKING:
    from celery import Celery

__all__ = ["DEFAULT_LEASE_TTL", "Lease", "dead_here", "evict", "lease"]

#: Seconds a lease outlives its holder's last renewal. With the default heartbeat (a third of
#: it) a holder survives two renewals lost in a row, and a dead holder's run is taken over
#: within a minute, far sooner than the broker redelivers its message.
DEFAULT_LEASE_TTL = 60.0
#: Redis keeps expiry times in milliseconds.
_MIN_TTL = 0.001

_LOG = logging.getLogger("crawjud_tasks.lease")

#: Take the key if it is free; else answer who holds it and for how long (one round trip).
_ACQUIRE = """
if redis.call('set', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return 1
end
return {redis.call('get', KEYS[1]), redis.call('pttl', KEYS[1])}
"""
#: Extend the key while it holds our value; else answer what it holds (nil: nothing).
_RENEW = """
local current = redis.call('get', KEYS[1])
if current == ARGV[1] then
  redis.call('pexpire', KEYS[1], ARGV[2])
  return 1
end
return current
"""
#: Delete the key only while it holds our value.
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""
#: Delete the key only while the holder labelled ARGV[1] has it (the label follows the token).
_EVICT = """
local current = redis.call('get', KEYS[1])
if current then
  local space = string.find(current, ' ', 1, true)
  if space and string.sub(current, space + 1) == ARGV[1] then
    return redis.call('del', KEYS[1])
  end
end
return 0
"""


def lease(
    app: Celery,
    key: str,
    ttl: float = DEFAULT_LEASE_TTL,
    *,
    heartbeat: float | None = None,
    owner: str | None = None,
    on_lost: Callable[[LeaseLostError], None] | None = None,
    on_renew: Callable[[], None] | None = None,
) -> Lease:
    """A lease on ``key`` for ``app``, to take with ``with`` or :meth:`Lease.acquire`.

    Args:
        app: The app whose Redis keeps the lease (its result backend's, else its broker's).
        key: What the lease guards, e.g. ``"run:<run id>"``; stored as ``<prefix>lease:<key>``.
        ttl: Seconds the lease outlives the holder's last renewal.
        heartbeat: Seconds between renewals (default ``ttl / 3``); shorter than ``ttl``.
        owner: The holder's label that others see (default ``hostname:pid``).
        on_lost: Called once, from the heartbeat thread, with the error, if the lease is lost.
        on_renew: Called from the heartbeat thread after each renewal (its errors are logged).

    Raises:
        SettingsError: ``key``, ``ttl``, ``heartbeat`` or ``owner`` is invalid.
        CrawjudTasksError: ``app`` was not made by ``create_app`` nor ``install``, or has no
            Redis to keep the lease on.
    """
    return Lease(
        app, key, ttl, heartbeat=heartbeat, owner=owner, on_lost=on_lost, on_renew=on_renew
    )


def evict(app: Celery, key: str, owner: str) -> bool:
    """Delete the lease on ``key`` if the holder labelled ``owner`` has it; ``True`` if it did.

    For a holder known to be dead (its process exited), so that the next holder need not wait
    for the ``ttl`` to run out. A lease another holder took meanwhile is left alone.

    Raises:
        BrokerUnavailableError: Redis did not answer.
    """
    state = app_state(app)
    with state.redis_errors():
        deleted: Any = state.redis.register_script(_EVICT)(
            keys=[state.keys.lease(key)], args=[owner]
        )
    return bool(deleted)


@final
class Lease:
    """A lease on one key: see :func:`lease`.

    Use it as a context manager, or call :meth:`acquire` and :meth:`release`. While it is held,
    :meth:`check` (no Redis command) raises :class:`LeaseLostError` once the lease is lost.
    A lease that is never released is renewed until its process ends.
    """

    def __init__(
        self,
        app: Celery,
        key: str,
        ttl: float = DEFAULT_LEASE_TTL,
        *,
        heartbeat: float | None = None,
        owner: str | None = None,
        on_lost: Callable[[LeaseLostError], None] | None = None,
        on_renew: Callable[[], None] | None = None,
    ) -> None:
        if not key:
            msg = f"a lease key must be a non-empty string, got {key!r}"
            raise SettingsError(msg)
        _check_seconds("ttl", ttl, minimum=_MIN_TTL)
        beat = ttl / 3 if heartbeat is None else heartbeat
        _check_seconds("heartbeat", beat, minimum=_MIN_TTL)
        if beat >= ttl:
            msg = (
                f"lease heartbeat ({beat} s) must be shorter than its ttl ({ttl} s), so that a "
                f"renewal comes before the lease expires"
            )
            raise SettingsError(msg)
        label = f"{socket.gethostname()}:{os.getpid()}" if owner is None else owner
        if not label:
            msg = f"a lease owner must be a non-empty string, got {owner!r}"
            raise SettingsError(msg)
        #: The key the caller named.
        self.key = key
        #: The Redis key: ``<prefix>lease:<key>``.
        self.redis_key = app_state(app).keys.lease(key)
        #: Seconds the lease outlives the last renewal.
        self.ttl = float(ttl)
        #: Seconds between renewals.
        self.heartbeat = float(beat)
        #: The holder's label that other holders see.
        self.owner = label
        self._app = app
        self._on_lost = on_lost
        self._on_renew = on_renew
        self._ttl_ms = max(1, round(self.ttl * 1000))
        client = app_state(app).redis
        self._acquire_script = client.register_script(_ACQUIRE)
        self._renew_script = client.register_script(_RENEW)
        self._release_script = client.register_script(_RELEASE)
        self._lock = threading.Lock()
        self._value: bytes | None = None  # token and label, while held
        self._confirmed_at = 0.0  # when the last renewal that found the lease ours was sent
        self._lost: LeaseLostError | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- taking and giving back ---------------------------------------------------------------

    def acquire(self) -> Lease:
        """Take the lease and start the heartbeat; return ``self``.

        Raises:
            LeaseHeldError: another holder has the lease and renews it; the message names the
                key, the holder and the seconds before it expires unless renewed.
            LeaseError: this object holds the lease already.
            BrokerUnavailableError: Redis did not answer.
        """
        if self._value is not None:
            msg = f"lease {self.key!r} is held by this Lease already; release() it first"
            raise LeaseError(msg)
        value = f"{secrets.token_hex(16)} {self.owner}".encode()
        sent = time.monotonic()
        with app_state(self._app).redis_errors():
            answer: Any = self._acquire_script(keys=[self.redis_key], args=[value, self._ttl_ms])
        if answer != 1:
            error = LeaseHeldError(self._held_message(answer[0], answer[1]))
            error.holder = (answer[0] or b"").partition(b" ")[2].decode(errors="replace") or None
            error.expires_in = answer[1] / 1000 if answer[1] >= 0 else None
            raise error
        stop = threading.Event()
        with self._lock:
            self._value, self._confirmed_at, self._lost, self._stop = value, sent, None, stop
        self._thread = threading.Thread(
            target=self._beat,
            args=(value, stop),
            name=f"crawjud-lease-heartbeat:{self.key}",
            daemon=True,
        )
        self._thread.start()
        return self

    def release(self) -> None:
        """Stop the heartbeat and delete the lease if it is still this holder's.

        Another holder's lease is never deleted. Releasing a lease that is not held does
        nothing.

        Raises:
            BrokerUnavailableError: Redis did not answer (the lease expires after ``ttl``).
        """
        with self._lock:
            value, self._value = self._value, None
            self._stop.set()
            thread, self._thread = self._thread, None
        if value is None:
            return
        if thread is not None and thread is not threading.current_thread():
            thread.join()
        with app_state(self._app).redis_errors():
            self._release_script(keys=[self.redis_key], args=[value])

    def __enter__(self) -> Lease:
        return self.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Release; raise :class:`LeaseLostError` if the body ended normally but lost the lease."""
        lost = self._lost_error()
        try:
            self.release()
        except BrokerUnavailableError as error:
            if exc is None and lost is None:
                raise
            _LOG.warning("lease %r was not released (it expires by itself): %s", self.key, error)
        if exc is None and lost is not None:
            raise lost

    # -- state ----------------------------------------------------------------------------------

    @property
    def token(self) -> bytes | None:
        """The value the lease key holds while this object holds it (``None`` otherwise).

        For writes fenced by the lease: a Lua script that compares the key's value with it
        writes only while this holder still has the lease.
        """
        return self._value

    @property
    def held(self) -> bool:
        """Whether this object holds the lease (acquired, not released, not lost)."""
        return self._value is not None and self._lost_error() is None

    @property
    def lost(self) -> bool:
        """Whether the lease was lost while held (see :meth:`check`)."""
        return self._lost_error() is not None

    def check(self) -> None:
        """Raise if the lease was lost; cheap enough to call before each step of a run.

        No Redis command is sent: the heartbeat finds a loss at its next renewal, and a lease
        whose last successful renewal is older than ``ttl`` counts as lost at once.

        Raises:
            LeaseLostError: the lease expired, was taken over or deleted, or could not be
                renewed within ``ttl``.
            LeaseError: the lease is not held (never acquired, or released).
        """
        lost = self._lost_error()
        if lost is not None:
            raise lost
        if self._value is None:
            msg = f"lease {self.key!r} is not held; acquire() it first"
            raise LeaseError(msg)

    def __repr__(self) -> str:
        state = "lost" if self.lost else "held" if self._value is not None else "not held"
        return f"<Lease {self.key!r} {state} owner={self.owner!r} ttl={self.ttl}>"

    # -- internals ------------------------------------------------------------------------------

    def _lost_error(self) -> LeaseLostError | None:
        if self._lost is not None:
            return self._lost
        if self._value is not None and time.monotonic() - self._confirmed_at >= self.ttl:
            return self._lost_message(f"no renewal reached Redis within its {self.ttl} s ttl")
        return None

    def _lost_message(self, reason: str) -> LeaseLostError:
        return LeaseLostError(f"lease {self.key!r} of {self.owner!r} was lost: {reason}")

    def _held_message(self, holder: bytes | None, pttl: int) -> str:
        label = (holder or b"").partition(b" ")[2].decode(errors="replace") or "an unknown holder"
        if pttl < 0:
            expiry = "and never expires: the key was set without a ttl"
        else:
            expiry = f"for another {pttl / 1000:.1f} s unless renewed"
        return f"lease {self.key!r} is held by {label!r} {expiry} ({self.redis_key})"

    def _beat(self, value: bytes, stop: threading.Event) -> None:
        """The heartbeat thread: renew every ``heartbeat`` seconds until released or lost."""
        wait = self.heartbeat
        while not stop.wait(wait):
            deadline = self._confirmed_at + self.ttl
            sent = time.monotonic()
            if sent >= deadline:
                self._mark_lost(value, f"no renewal reached Redis within its {self.ttl} s ttl")
                return
            try:
                answer: Any = self._renew_script(keys=[self.redis_key], args=[value, self._ttl_ms])
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                # Keep trying, more often, until the ttl since the last renewal runs out.
                _LOG.warning("lease %r: renewal failed, retrying: %s", self.key, exc)
                wait = max(0.0, min(self.heartbeat / 3, deadline - time.monotonic()))
                continue
            except Exception as exc:  # the thread must not die silently while the lease lapses
                self._mark_lost(value, f"its renewal failed: {type(exc).__name__}: {exc}")
                return
            if answer == 1:
                self._confirmed_at = sent
                wait = self.heartbeat
                if self._on_renew is not None:
                    try:
                        self._on_renew()
                    except Exception:
                        _LOG.exception("lease %r: the on_renew callback failed", self.key)
                continue
            if answer is None:
                reason = "the key expired or was deleted before a renewal"
            else:
                holder = bytes(answer).partition(b" ")[2].decode(errors="replace")
                reason = f"{holder or 'another holder'!r} holds it now"
            self._mark_lost(value, reason)
            return

    def _mark_lost(self, value: bytes, reason: str) -> None:
        error = self._lost_message(reason)
        with self._lock:
            if self._value != value or self._lost is not None:
                return  # released meanwhile, or already lost
            self._lost = error
        _LOG.warning("%s", error)
        if self._on_lost is not None:
            try:
                self._on_lost(error)
            except Exception:
                _LOG.exception("lease %r: the on_lost callback failed", self.key)


def _check_seconds(name: str, value: Any, *, minimum: float) -> None:
    if not is_seconds(value, minimum=minimum):
        msg = f"lease {name} must be a finite number of at least {minimum} s, got {value!r}"
        raise SettingsError(msg)


def dead_here(holder: str) -> bool:
    """Whether ``holder`` (``host:pid``) is a process of this machine that no longer exists."""
    host, _, pid = holder.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
