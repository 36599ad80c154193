"""Retry policies: when to retry a failure and how long to wait, in one frozen value.

:class:`RetryPolicy` has the shape of stamina's and Temporal's retry policies. Its
:meth:`~RetryPolicy.next_delay` is the one place that decides: inline retries
(:meth:`~RetryPolicy.retrying` and :meth:`~RetryPolicy.wrap`, over tenacity) and broker retries
(a Celery countdown) both ask it, so one policy drives both.

Testing switch: :func:`set_retry_waits` (public as ``crawjud_tasks.testing.retry_waits``) or the
environment variable ``CRAWJUD_TASKS_RETRY_WAITS=0`` turn every wait into 0 s. Whether to retry
is still decided as in production, on the waits production would make, and retries are still
logged.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import logging
import math
import os
import random
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, ParamSpec, TypeAlias, TypeVar

import tenacity

from crawjud_tasks._checks import is_count, is_seconds
from crawjud_tasks._guards import is_list_or_tuple
from crawjud_tasks._settings import RETRY_WAITS_ENV
from crawjud_tasks.errors import (
    CrawjudTasksError,
    PermanentError,
    SettingsError,
    TransientError,
    VisibilityTimeoutError,
)

if TYPE_CHECKING:
    from tenacity import RetryCallState

__all__ = [
    "DEFAULT_NEVER_ON",
    "DEFAULT_RETRY_ON",
    "RetryPolicy",
    "RetryWaits",
    "retry_waits_enabled",
    "set_retry_waits",
]

P = ParamSpec("P")
R = TypeVar("R")

#: An exception class, or a tuple of them (what ``isinstance`` takes).
ExceptionTypes: TypeAlias = "type[Exception] | tuple[type[Exception], ...]"

#: Retried by default: our :class:`TransientError`, and the built-in errors of a network call
#: that may succeed a moment later (refused, reset or aborted connections, broken pipes,
#: time-outs). Not the rest of :class:`OSError`: a missing file or a denied permission stays.
DEFAULT_RETRY_ON: tuple[type[Exception], ...] = (TransientError, ConnectionError, TimeoutError)
#: Never retried by default, even when also listed in ``retry_on``.
DEFAULT_NEVER_ON: tuple[type[Exception], ...] = (PermanentError,)

_LOG = logging.getLogger("crawjud_tasks.retry")
#: What tenacity's ``wait`` answers when the policy gives up; its ``stop`` reads it.
_GIVE_UP = math.inf
_WAITS_OFF = frozenset({"0", "false", "no", "off"})
_WAITS_ON = frozenset({"", "1", "true", "yes", "on"})


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """When to retry a failure, and how long to wait before each new attempt.

    The wait before retry ``n`` (``n = 0`` after the first failure) is
    ``min(initial_wait * multiplier ** n, max_wait)`` plus a random ``0..jitter`` seconds.
    Validated on creation; every field has a production default.

    Raises:
        SettingsError: a field is out of range or of the wrong type (one line naming it).
    """

    #: Attempts in all, the first included (``1`` never retries).
    attempts: int = 5
    #: Seconds before the first retry.
    initial_wait: float = 1.0
    #: Each wait is this many times the one before (``1`` keeps them equal).
    multiplier: float = 2.0
    #: No wait is longer than this (before jitter).
    max_wait: float = 30.0
    #: At most this many random seconds added to each wait, so that many failed callers do not
    #: all come back at the same instant.
    jitter: float = 1.0
    #: Seconds from the start of the first attempt after which no new attempt starts (``None``:
    #: only ``attempts`` bounds the retries).
    timeout: float | None = None
    #: Exception types that are retried.
    retry_on: ExceptionTypes = DEFAULT_RETRY_ON
    #: Exception types that are never retried; they win over ``retry_on``.
    never_on: ExceptionTypes = DEFAULT_NEVER_ON

    def __post_init__(self) -> None:
        _check_attempts(self.attempts)
        for name in ("initial_wait", "max_wait", "jitter"):
            _check_seconds(name, getattr(self, name), minimum=0.0)
        _check_seconds("multiplier", self.multiplier, minimum=1.0)
        if self.max_wait < self.initial_wait:
            msg = (
                f"RetryPolicy.max_wait ({self.max_wait}) must be at least initial_wait "
                f"({self.initial_wait})"
            )
            raise SettingsError(msg)
        if self.timeout is not None:
            _check_seconds("timeout", self.timeout, minimum=0.0)
            if self.timeout == 0:
                msg = "RetryPolicy.timeout must be more than 0, or None for no time limit"
                raise SettingsError(msg)
        object.__setattr__(self, "retry_on", _exception_types("retry_on", self.retry_on))
        object.__setattr__(self, "never_on", _exception_types("never_on", self.never_on))

    # -- presets ------------------------------------------------------------------------------

    @classmethod
    def court_site(cls) -> RetryPolicy:
        """Network calls to court sites (PJe, Projudi, e-SAJ...): slow, throttled, at times down.

        5 attempts waiting 2, 4, 8 and 16 s (plus up to 1 s of jitter each): about half a minute
        rides out an overloaded site or a restart without hammering it. No attempt starts more
        than 10 minutes after the first, so one item never holds a run for long.
        """
        return cls(
            attempts=5, initial_wait=2.0, multiplier=2.0, max_wait=60.0, jitter=1.0, timeout=600.0
        )

    @classmethod
    def smtp(cls) -> RetryPolicy:
        """Sending mail: transient (4xx) answers and greylisting.

        6 attempts waiting 5, 15, 45, 135 and 300 s (plus up to 5 s of jitter each): the last
        retry comes more than 8 minutes after the first attempt, past the usual 5-minute
        greylisting delay. No attempt starts after 20 minutes. Permanent (5xx) answers are
        :class:`PermanentError` and are never retried.
        """
        return cls(
            attempts=6, initial_wait=5.0, multiplier=3.0, max_wait=300.0, jitter=5.0, timeout=1200.0
        )

    @classmethod
    def never(cls) -> RetryPolicy:
        """One attempt, no retry."""
        return cls(attempts=1)

    # -- decisions ----------------------------------------------------------------------------

    def should_retry(self, exc: BaseException) -> bool:
        """Whether ``exc`` is worth another attempt: in ``retry_on`` and not in ``never_on``."""
        return isinstance(exc, self.retry_on) and not isinstance(exc, self.never_on)

    def delays(self) -> tuple[float, ...]:
        """The waits before each retry, without jitter (``attempts - 1`` of them), in seconds."""
        return tuple(self._base_wait(n) for n in range(self.attempts - 1))

    @property
    def max_delay(self) -> float:
        """The longest wait this policy can produce, jitter included, in seconds.

        That is the last wait of the schedule plus ``jitter`` (at most ``max_wait + jitter``),
        and 0 for a policy that never retries.
        """
        if self.attempts == 1:
            return 0.0
        return self._base_wait(self.attempts - 2) + self.jitter

    def next_delay(self, retries_done: int, elapsed: float, exc: BaseException) -> float | None:
        """The seconds to wait before the next attempt, jitter included; ``None`` to give up.

        The policy gives up when ``exc`` is not retried, when the attempts are used up, or when
        the next attempt would start at or after ``timeout``. With retry waits switched off (see
        the module), the decision is the same and the wait returned is 0.

        Args:
            retries_done: Retries made so far (0 after the first attempt failed).
            elapsed: Seconds since the first attempt started.
            exc: The exception the last attempt raised.
        """
        if retries_done + 1 >= self.attempts or not self.should_retry(exc):
            return None
        delay = self._base_wait(retries_done)
        if self.jitter:
            delay += random.uniform(0.0, self.jitter)  # noqa: S311  (spreading retries, not a secret)
        if self.timeout is not None and elapsed + delay >= self.timeout:
            return None
        return delay if retry_waits_enabled() else 0.0

    def check_visibility(self, visibility_timeout: float) -> None:
        """Refuse a policy whose waits reach the broker's visibility timeout.

        A message held back for a retry longer than the visibility timeout is redelivered by
        Redis while it waits, so the retry would run twice.

        Raises:
            VisibilityTimeoutError: :attr:`max_delay` reaches ``visibility_timeout``.
        """
        if self.max_delay >= visibility_timeout:
            msg = (
                f"retry waits reach {float(self.max_delay)} s but the broker redelivers "
                f"unacknowledged messages after {float(visibility_timeout)} s "
                f"(visibility_timeout); lower max_wait or raise visibility_timeout"
            )
            raise VisibilityTimeoutError(msg)

    # -- inline retries -----------------------------------------------------------------------

    def retrying(self, *, name: str | None = None) -> tenacity.Retrying:
        """A tenacity ``Retrying`` driven by :meth:`next_delay`.

        It re-raises the last exception itself (not tenacity's ``RetryError``) and logs each
        retry once at WARNING on the logger ``crawjud_tasks.retry``: ``name`` (or the function's
        name), the attempt that failed, the attempts in all, the wait and the exception's type.
        The exception's message is not logged, as it may hold a secret; the caller gets it.

        Use it as ``policy.retrying()(fn, *args)`` or ``for attempt in policy.retrying(): with
        attempt: ...``.
        """
        return tenacity.Retrying(
            retry=tenacity.retry_if_exception(self.should_retry),
            wait=self._tenacity_wait,
            stop=_gave_up,
            before_sleep=functools.partial(self._log_retry, name),
            reraise=True,
            name=name,
        )

    def wrap(self, fn: Callable[P, R]) -> Callable[P, R]:
        """Decorate a plain function so that each call is retried by this policy.

        Raises:
            CrawjudTasksError: ``fn`` is a coroutine function (not supported).
        """
        name: str = getattr(fn, "__qualname__", None) or repr(fn)
        if inspect.iscoroutinefunction(fn):
            msg = f"RetryPolicy.wrap() retries plain functions; {name} is a coroutine function"
            raise CrawjudTasksError(msg)

        @functools.wraps(fn)
        def retried(*args: P.args, **kwargs: P.kwargs) -> R:
            return self.retrying(name=name)(fn, *args, **kwargs)

        return retried

    # -- internals ----------------------------------------------------------------------------

    def _base_wait(self, retries_done: int) -> float:
        try:
            wait = self.initial_wait * self.multiplier**retries_done
        except OverflowError:
            wait = math.inf
        return min(wait, self.max_wait)

    def _tenacity_wait(self, state: RetryCallState) -> float:
        exc = _exception_of(state)
        if exc is None:  # only exceptions are retried; nothing to wait for
            return _GIVE_UP
        delay = self.next_delay(state.attempt_number - 1, state.seconds_since_start or 0.0, exc)
        return _GIVE_UP if delay is None else delay

    def _log_retry(self, name: str | None, state: RetryCallState) -> None:
        exc = _exception_of(state)
        label = name or getattr(state.fn, "__qualname__", None) or "call"
        _LOG.warning(
            "%s: attempt %d of %d failed with %s; retrying in %.2f s",
            label,
            state.attempt_number,
            self.attempts,
            type(exc).__qualname__,
            state.upcoming_sleep,
        )


# -- the testing switch -------------------------------------------------------------------------


class _Switch:
    __slots__ = ("waits",)

    def __init__(self) -> None:
        self.waits: bool | None = None  # None: read the environment


_SWITCH = _Switch()


class RetryWaits:
    """What :func:`set_retry_waits` returns: a context manager that restores the previous state."""

    __slots__ = ("_previous",)

    def __init__(self, previous: bool | None) -> None:
        self._previous = previous

    def __enter__(self) -> RetryWaits:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        _SWITCH.waits = self._previous


def set_retry_waits(enabled: bool) -> RetryWaits:
    """Switch retry waits on or off in this process, now; ``with`` restores the previous state.

    This wins over ``CRAWJUD_TASKS_RETRY_WAITS``.
    """
    previous, _SWITCH.waits = _SWITCH.waits, enabled
    return RetryWaits(previous)


def retry_waits_enabled() -> bool:
    """Whether retry policies wait in this process (the switch, else the environment).

    Raises:
        SettingsError: ``CRAWJUD_TASKS_RETRY_WAITS`` is neither on (``1``) nor off (``0``).
    """
    if _SWITCH.waits is not None:
        return _SWITCH.waits
    raw = os.environ.get(RETRY_WAITS_ENV)
    if raw is None:
        return True
    value = raw.strip().lower()
    if value in _WAITS_OFF:
        return False
    if value in _WAITS_ON:
        return True
    msg = f"{RETRY_WAITS_ENV} must be 0 (no retry waits) or 1 (waits), got {raw!r}"
    raise SettingsError(msg)


# -- helpers ------------------------------------------------------------------------------------


def _gave_up(state: RetryCallState) -> bool:
    """tenacity's ``stop``: the wait just computed says the policy gave up."""
    return state.upcoming_sleep == _GIVE_UP


def _exception_of(state: RetryCallState) -> BaseException | None:
    outcome = state.outcome
    return outcome.exception() if outcome is not None else None


def _check_attempts(value: Any) -> None:
    if not is_count(value):
        msg = f"RetryPolicy.attempts must be a whole number of at least 1, got {value!r}"
        raise SettingsError(msg)


def _check_seconds(name: str, value: Any, *, minimum: float) -> None:
    if not is_seconds(value, minimum=minimum):
        msg = f"RetryPolicy.{name} must be a finite number of at least {minimum}, got {value!r}"
        raise SettingsError(msg)


def _exception_types(name: str, value: Any) -> tuple[type[Exception], ...]:
    items = tuple(value) if is_list_or_tuple(value) else (value,)
    for item in items:
        if not (isinstance(item, type) and issubclass(item, Exception)):
            msg = (
                f"RetryPolicy.{name} must be an exception class or a tuple of them "
                f"(subclasses of Exception), got {item!r}"
            )
            raise SettingsError(msg)
    return items
