"""At-least-once delivery: each delivery counted, poison messages recorded, one run at a time.

``task_contract(..., delivery="at_least_once")``: the message is acknowledged after the run
(``acks_late``) and requeued if the worker process dies (``reject_on_worker_lost``). Each
delivery is counted in Redis; past ``max_deliveries`` the message is a poison message: it fails
with :class:`PoisonMessageError`, recorded (:func:`poison_messages`), instead of being requeued
for ever. A copy delivered again after its run ended (the acknowledgement was lost: the worker
died or lost Redis first) is dropped. The run holds a lease (:mod:`._leases`); a copy delivered
while the first is alive is dropped, and a pool process that dies has its lease freed by the
worker at once (:mod:`._worker_requests`), as Celery requeues its message at once.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from celery.exceptions import Ignore, Reject, Retry

from crawjud_tasks._checks import is_count
from crawjud_tasks._delivery._leases import (
    hold,
    lease_owner,
    lease_ttl,
    take_lease,
    unacked_toucher,
)
from crawjud_tasks._delivery._outcomes import outcome_budget, retry_write
from crawjud_tasks._delivery._poison import record_poison
from crawjud_tasks._keys import task_lease_name
from crawjud_tasks._lease import lease
from crawjud_tasks._state import app_state
from crawjud_tasks.errors import (
    BrokerUnavailableError,
    DispatchError,
    DuplicateRunError,
    LeaseHeldError,
    PoisonMessageError,
)

if TYPE_CHECKING:
    from celery import Celery

    from crawjud_tasks._delivery._execution import Step
    from crawjud_tasks._delivery._terminal import Terminal
    from crawjud_tasks._lease import Lease

__all__ = ["AtLeastOnce", "PoisonRecord", "poison_messages"]

#: The delivery counter of a message whose run ended (far below any count of deliveries).
_ENDED = -1_000_000_000
#: Seconds a worker waits before giving back a message it cannot guard (Redis unavailable).
_REQUEUE_PAUSE = 1.0

_LOG = logging.getLogger("crawjud_tasks.worker")


@dataclasses.dataclass(frozen=True, slots=True)
class PoisonRecord:
    """A message dropped after too many deliveries."""

    #: The task id (the message id).
    task_id: str
    #: The task's name.
    task: str
    #: How many times it was delivered.
    deliveries: int
    #: Why it was dropped.
    reason: str
    #: When (UTC).
    time: dt.datetime


def poison_messages(app: Celery, *, limit: int = 100) -> list[PoisonRecord]:
    """The most recent poison messages of ``app``'s namespace, newest first (at most ``limit``).

    Raises:
        DispatchError: ``limit`` is not an integer >= 1.
        BrokerUnavailableError: Redis did not answer.
    """
    if not is_count(limit):
        msg = f"limit must be an integer >= 1, got {limit!r}"
        raise DispatchError(msg)
    state = app_state(app)
    with state.redis_errors():
        raw: Any = state.redis.lrange(state.keys.poison(), 0, limit - 1)
    records: list[PoisonRecord] = []
    for entry in raw:
        data = json.loads(entry)
        data["time"] = dt.datetime.fromisoformat(data["time"])
        records.append(PoisonRecord(**data))
    return records


class AtLeastOnce:
    """The guarantee: count the delivery, refuse a poison message, hold the run's lease; a
    message that ends for good without the implementation's return calls its ``terminal``."""

    __slots__ = ("duplicate_hint", "lease_name", "max_deliveries", "terminal")

    def __init__(
        self,
        max_deliveries: int,
        lease_name: Callable[..., str] | None,
        terminal: Terminal | None = None,
        duplicate_hint: str | None = None,
    ) -> None:
        self.max_deliveries = max_deliveries
        #: The lease's name from the task and the run's decoded arguments (None: the
        #: message's own lease).
        self.lease_name = lease_name
        self.terminal = terminal
        self.duplicate_hint = (
            duplicate_hint or "cancel it or dispatch this one with other arguments"
        )

    def wrap(self, proceed: Step) -> Step:
        def guarded(task: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            app: Celery = task.app
            guard = self._guard(app, task, args, kwargs)
            hold(task, guard)
            ended: Exception | None = None
            try:
                result = proceed(task, args, kwargs)
            except Exception as exc:
                # Failed, or retried as a new message: this one is done (unless sent back).
                requeued: Any = isinstance(exc, Reject) and getattr(exc, "requeue", False)
                if not requeued:
                    _end_deliveries(app, task)
                    if not isinstance(exc, (Retry, Ignore)):
                        ended = exc
                raise
            else:
                _end_deliveries(app, task)
            finally:
                hold(task, None)
                _release(guard, task)
                if ended is not None and self.terminal is not None:
                    reason = (
                        f"{type(ended).__name__}: {ended}" if str(ended) else type(ended).__name__
                    )
                    self.terminal.call(
                        app,
                        task.name,
                        _request_id(task),
                        "error",
                        reason,
                        args,
                        kwargs,
                        decoded=True,
                    )
            return result

        return guarded

    def _guard(
        self, app: Celery, task: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Lease:
        """Count this delivery, refuse a poison message, and take the run's lease."""
        request = task.request
        try:
            deliveries = _count_delivery(app, task)
        except BrokerUnavailableError as exc:
            # Without the counter the run is not guarded: give the message back, after a pause
            # so that an outage of Redis is not a busy loop.
            _LOG.warning("%s[%s]: requeued, Redis is unavailable: %s", task.name, request.id, exc)
            time.sleep(_REQUEUE_PAUSE)
            raise Reject(exc, requeue=True) from exc
        if deliveries <= 0:
            _LOG.warning(
                "%s[%s]: delivered again after its run ended (the acknowledgement was lost); "
                "this copy is dropped",
                task.name,
                request.id,
            )
            raise Ignore
        if deliveries > self.max_deliveries:
            reason = (
                f"delivered {deliveries} times; the {deliveries - 1} deliveries before this one "
                "ended without an acknowledgement (the worker process died or was killed)"
            )
            _record_poison(app, task, deliveries, reason)
            _LOG.error("%s[%s] is a poison message: %s", task.name, request.id, reason)
            if self.terminal is not None:
                self.terminal.call(
                    app, task.name, _request_id(task), "poison", reason, args, kwargs, decoded=True
                )
            msg = f"{task.name}[{request.id}] was dropped: {reason}"
            raise PoisonMessageError(msg)
        if self.lease_name is not None:
            name = self.lease_name(task, *args, **kwargs)
            return _take_named(app, task, name, self.duplicate_hint)
        run_lease = lease(
            app,
            task_lease_name(task.name, request.id, request.retries),
            lease_ttl(app),
            owner=lease_owner(os.getpid()),
            on_renew=unacked_toucher(app, task),
        )
        try:
            return run_lease.acquire()
        except LeaseHeldError as exc:
            _LOG.warning(
                "%s[%s]: another delivery of this task is still running (%s); this copy is dropped",
                task.name,
                request.id,
                exc,
            )
            raise Ignore from exc


def _request_id(task: Any) -> str:
    """The id of ``task``'s current message."""
    return str(task.request.id)


def _take_named(app: Celery, task: Any, name: str, hint: str) -> Lease:
    try:
        return take_lease(app, name, on_renew=unacked_toucher(app, task))
    except LeaseHeldError as exc:
        msg = f"{task.name}[{task.request.id}]: {name} is running already ({exc}); {hint}"
        error = DuplicateRunError(msg)
        error.holder, error.expires_in = exc.holder, exc.expires_in
        raise error from exc


def _release(guard: Lease, task: Any) -> None:
    """Give the run's lease back; a Redis error here never changes the run's outcome."""
    try:
        guard.release()
    except BrokerUnavailableError as exc:
        _LOG.warning(
            "%s[%s]: the run lease was not released (it expires by itself): %s",
            task.name,
            task.request.id,
            exc,
        )


def _deliveries_key(app: Celery, task: Any) -> str:
    request = task.request
    return app_state(app).keys.deliveries(task.name, request.id, request.retries)


def _count_delivery(app: Celery, task: Any) -> int:
    state = app_state(app)
    name = _deliveries_key(app, task)
    with state.redis_errors(), state.redis.pipeline(transaction=False) as pipe:  # pyright: ignore[reportUnknownMemberType]  (redis-py leaves shard_hint unannotated)
        pipe.incr(name)
        pipe.expire(name, max(1, round(state.settings.idempotency_ttl)))
        count, _ = pipe.execute()
    return int(count)


def _end_deliveries(app: Celery, task: Any) -> None:
    """Record that this message's run ended: a later delivery of it counts below zero.

    A message is delivered again after its run ended when its acknowledgement was lost (the
    worker died, or lost Redis, between the run and the acknowledgement); that copy is dropped.
    Written before the message is acknowledged, and retried through an outage of Redis within
    the outcome budget (:mod:`._outcomes`).
    """
    state = app_state(app)
    name = _deliveries_key(app, task)
    ttl = max(1, round(state.settings.idempotency_ttl))

    def write() -> None:
        with state.redis_errors():
            state.redis.set(name, _ENDED, ex=ttl)

    budget = outcome_budget(app)
    error = retry_write(write, budget)
    if error is not None:
        _LOG.warning(
            "%s[%s]: the end of the run was not recorded within %.0f s, so a copy delivered "
            "again would run again: %s",
            task.name,
            task.request.id,
            budget,
            error,
        )


def _record_poison(app: Celery, task: Any, deliveries: int, reason: str) -> None:
    record_poison(app_state(app), str(task.request.id), str(task.name), deliveries, reason)
