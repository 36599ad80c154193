"""What runs on the worker when a contract's task is delivered.

The plain path (no retry policy, at-most-once delivery, no idempotency key in the message) adds
no Redis command to what Celery does: check and rebuild the arguments, call the implementation,
encode the result. The rest is paid for only by the tasks that ask for it:

- **Idempotency key** (a header set at dispatch): a key that already completed returns its
  stored result without running again; a completed run stores its result under the key.
- **Broker retries** (``implement(app, retry=policy)``): a failure the policy retries is sent
  back to the broker with the countdown the policy computes (fractional seconds kept), logged
  once with the attempt number and the wait; the policy's overall timeout counts from the first
  attempt, whose time travels in a header.
- **At-least-once delivery** (``task_contract(..., delivery="at_least_once")``): the message is
  acknowledged after the run (``acks_late``) and requeued if the worker process dies
  (``reject_on_worker_lost``). Each delivery is counted in Redis; past ``max_deliveries`` the
  message is a poison message: it fails with :class:`PoisonMessageError`, recorded, instead of
  being requeued for ever. A copy delivered again after its run ended (the acknowledgement was
  lost: the worker died or lost Redis first) is dropped. The run holds a lease renewed by a
  heartbeat, which also keeps the message from being redelivered by the visibility timeout while
  the run is alive; a copy delivered anyway while the first is alive is dropped. The lease lives
  at most half the visibility timeout past its last renewal, so a copy redelivered after its
  worker died finds it expired; a pool process that dies has its lease freed by the worker at
  once (:mod:`crawjud_tasks._worker_requests`), as Celery requeues its message at once.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import os
import socket
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from celery.exceptions import Ignore, Reject

from crawjud_tasks._codec import ContractCodec, encode
from crawjud_tasks._dispatch import visibility_timeout
from crawjud_tasks._guards import is_instance
from crawjud_tasks._idempotency import HEADER as IDEMPOTENCY_HEADER
from crawjud_tasks._idempotency import load_result, store_result
from crawjud_tasks._keys import task_lease_name
from crawjud_tasks._lease import lease
from crawjud_tasks._state import app_state
from crawjud_tasks.errors import (
    BrokerUnavailableError,
    DispatchError,
    LeaseHeldError,
    PoisonMessageError,
)

if TYPE_CHECKING:
    from celery import Celery

    from crawjud_tasks._lease import Lease
    from crawjud_tasks._retry import RetryPolicy

__all__ = [
    "DEFAULT_MAX_DELIVERIES",
    "Delivery",
    "Execution",
    "PoisonRecord",
    "poison_messages",
    "run_lease_owner",
    "run_lease_ttl",
]

Delivery = Literal["at_most_once", "at_least_once"]
#: Deliveries of one message before it counts as poison.
DEFAULT_MAX_DELIVERIES = 3
#: Header with the time (UNIX seconds) the first attempt started, carried across retries.
FIRST_ATTEMPT_HEADER = "crawjud_first_attempt"
#: A run's lease outlives its last renewal by this many seconds (renewed every third of it), or
#: by half the visibility timeout when that is shorter (see :func:`run_lease_ttl`).
RUN_LEASE_TTL = 30.0
#: The delivery counter of a message whose run ended (far below any count of deliveries).
_ENDED = -1_000_000_000
#: Seconds a worker waits before giving back a message it cannot guard (Redis unavailable).
_REQUEUE_PAUSE = 1.0
#: Poison records kept (the newest).
_POISON_KEPT = 1000

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
    if is_instance(limit, bool) or not is_instance(limit, int) or limit < 1:
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


@dataclasses.dataclass(frozen=True, slots=True)
class Execution:
    """How one contract's implementation runs on the worker."""

    codec: ContractCodec
    func: Callable[..., Any]
    bound: bool
    retry: RetryPolicy | None
    delivery: Delivery
    max_deliveries: int

    def runner(self) -> Callable[..., Any]:
        """The function Celery runs (bound: it receives the task first)."""
        plain = self.retry is None and self.delivery == "at_most_once"
        call = self._call

        def run(task: Any, *args: Any, **kwargs: Any) -> Any:
            request = task.request
            key = getattr(request, IDEMPOTENCY_HEADER, None)
            if (plain and key is None) or request.called_directly:
                # Called in-process (map_chunks runs each item so): no message of its own to
                # count, lease or retry; the message that carried the chunk has those.
                return call(task, args, kwargs)
            return self._run(task, key, args, kwargs)

        return run

    # -- the plain call -------------------------------------------------------------------------

    def _call(self, task: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if args or kwargs or self.codec.signature.parameters:
            args, kwargs = self.codec.decode_arguments(args, kwargs)
        result = self.func(task, *args, **kwargs) if self.bound else self.func(*args, **kwargs)
        return None if self.codec.returns_none else encode(result)

    # -- with guarantees ------------------------------------------------------------------------

    def _run(
        self, task: Any, key: str | None, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        app: Celery = task.app
        name: str = task.name
        if key is not None:
            done, stored = load_result(app, name, key)
            if done:
                _LOG.info(
                    "%s[%s]: key %r already completed; not run again", name, task.request.id, key
                )
                return stored
        if self.delivery == "at_least_once":
            guard = self._guard(app, task)
            try:
                result = self._attempt(task, args, kwargs)
            except Exception as exc:
                # Failed, or retried as a new message: this one is done (unless sent back).
                requeued: Any = isinstance(exc, Reject) and getattr(exc, "requeue", False)
                if not requeued:
                    _end_deliveries(app, task)
                raise
            else:
                _end_deliveries(app, task)
            finally:
                _release(guard, task)
        else:
            result = self._attempt(task, args, kwargs)
        if key is not None:
            store_result(app, name, key, result)
        return result

    def _attempt(self, task: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        policy = self.retry
        if policy is None:
            return self._call(task, args, kwargs)
        request = task.request
        headers: dict[str, Any] = dict(request.headers or {})
        first = float(headers.setdefault(FIRST_ATTEMPT_HEADER, time.time()))
        try:
            return self._call(task, args, kwargs)
        except Exception as exc:
            retries = int(request.retries or 0)
            delay = policy.next_delay(retries, time.time() - first, exc)
            if delay is None:
                raise
            _LOG.warning(
                "%s[%s]: attempt %d of %d failed with %s; retrying in %.2f s",
                task.name,
                request.id,
                retries + 1,
                policy.attempts,
                type(exc).__name__,
                delay,
            )
            raise task.retry(exc=exc, countdown=delay, headers=headers) from exc

    def _guard(self, app: Celery, task: Any) -> Lease:
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
            msg = f"{task.name}[{request.id}] was dropped: {reason}"
            raise PoisonMessageError(msg)
        run_lease = lease(
            app,
            task_lease_name(task.name, request.id, request.retries),
            run_lease_ttl(app),
            owner=run_lease_owner(os.getpid()),
            on_renew=_unacked_toucher(app, task),
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


def run_lease_owner(pid: int) -> str:
    """The label of the run lease held by process ``pid`` of this machine."""
    return f"{socket.gethostname()}:{pid}"


def run_lease_ttl(app: Celery) -> float:
    """Seconds a run's lease outlives its last renewal on ``app``'s workers.

    :data:`RUN_LEASE_TTL`, or half the visibility timeout when that is shorter: the heartbeat (a
    third of the ttl) then touches the message's unacknowledged entry well within the visibility
    timeout, and the lease of a worker that died has expired before the broker redelivers its
    message, so the new delivery is not taken for a live duplicate.
    """
    limit = visibility_timeout(app)
    return RUN_LEASE_TTL if limit is None else min(RUN_LEASE_TTL, limit / 2)


def _deliveries_key(app: Celery, task: Any) -> str:
    request = task.request
    return app_state(app).keys.deliveries(task.name, request.id, request.retries)


def _count_delivery(app: Celery, task: Any) -> int:
    client = app_state(app).redis
    name = _deliveries_key(app, task)
    with app_state(app).redis_errors(), client.pipeline(transaction=False) as pipe:  # pyright: ignore[reportUnknownMemberType]  (redis-py leaves shard_hint unannotated)
        pipe.incr(name)
        pipe.expire(name, max(1, round(app_state(app).settings.idempotency_ttl)))
        count, _ = pipe.execute()
    return int(count)


def _end_deliveries(app: Celery, task: Any) -> None:
    """Record that this message's run ended: a later delivery of it counts below zero.

    A message is delivered again after its run ended when its acknowledgement was lost (the
    worker died, or lost Redis, between the run and the acknowledgement); that copy is dropped.
    """
    client = app_state(app).redis
    try:
        with app_state(app).redis_errors():
            ttl = max(1, round(app_state(app).settings.idempotency_ttl))
            client.set(_deliveries_key(app, task), _ENDED, ex=ttl)
    except BrokerUnavailableError as exc:
        _LOG.warning(
            "%s[%s]: the end of the run was not recorded, so a copy delivered again would run "
            "again: %s",
            task.name,
            task.request.id,
            exc,
        )


def _record_poison(app: Celery, task: Any, deliveries: int, reason: str) -> None:
    record = {
        "task_id": str(task.request.id),
        "task": str(task.name),
        "deliveries": deliveries,
        "reason": reason,
        "time": dt.datetime.now(dt.timezone.utc).isoformat(),
    }
    key = app_state(app).keys.poison()
    client = app_state(app).redis
    with app_state(app).redis_errors(), client.pipeline(transaction=False) as pipe:  # pyright: ignore[reportUnknownMemberType]  (redis-py leaves shard_hint unannotated)
        pipe.lpush(key, json.dumps(record))
        pipe.ltrim(key, 0, _POISON_KEPT - 1)
        pipe.execute()


def _unacked_toucher(app: Celery, task: Any) -> Callable[[], None] | None:
    """A renewal hook that keeps the run's message out of Redis's visibility-timeout restore.

    kombu's Redis transport restores a delivered message once its entry in the unacked index is
    older than the visibility timeout. While the run's heartbeat lives, it moves that entry's
    time to now; once the worker dies, the entry ages and the message is redelivered.
    """
    transport: Any = app.conf.broker_transport_options or {}
    index = transport.get("unacked_index_key", "unacked_index")  # kombu's default name
    properties: Any = task.request.properties or {}
    tag = properties.get("delivery_tag")
    client = app_state(app).link.broker
    if index is None or tag is None or client is None:
        return None

    def touch() -> None:
        client.zadd(index, {tag: time.time()}, xx=True)

    return touch
