"""Sending: the send options (:class:`SendOptions`), the single-call send path (:class:`Call`),
and broker errors translated where they enter the library.

A typed signature (:mod:`crawjud_tasks._signatures`) holds a :class:`Node`: one :class:`Call`,
or a workflow of them (:mod:`crawjud_tasks._workflows`). A single call goes straight to
``send_task`` (the hot path: no canvas object), and claims its idempotency key first when it
has one; a workflow is turned into Celery canvas and published through one producer.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import Callable, Generator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from kombu.exceptions import ChannelError, OperationalError

from crawjud_tasks import _idempotency as idempotency
from crawjud_tasks._broker_hint import broker_unanswered
from crawjud_tasks._checks import is_connection_error, is_count, is_seconds
from crawjud_tasks._codec import encode
from crawjud_tasks._redis import is_redis_url, redis_full
from crawjud_tasks._results import TypedResult
from crawjud_tasks._state import app_state
from crawjud_tasks.errors import BrokerUnavailableError, DispatchError, VisibilityTimeoutError

if TYPE_CHECKING:
    from celery import Celery
    from celery.canvas import Signature

    from crawjud_tasks._codec import ContractCodec

__all__ = [
    "BATCH_SIZE",
    "Call",
    "Decode",
    "Node",
    "SendOptions",
    "broker_unavailable",
    "check_seconds",
    "translate_publish_errors",
    "visibility_timeout",
]

#: Publishes sent to Redis in one pipeline, at most.
BATCH_SIZE = 500

Decode = Callable[[Any], Any]

#: kombu's Redis transport redelivers after this many seconds unless told otherwise.
_KOMBU_VISIBILITY_TIMEOUT = 3600.0


def broker_unavailable(app: Celery, exc: BaseException) -> BrokerUnavailableError:
    """The error to raise when a publish to ``app``'s broker failed with ``exc``."""
    return BrokerUnavailableError(broker_unanswered(app, exc))


@contextmanager
def translate_publish_errors(app: Celery) -> Generator[None, None, None]:
    """Turn the errors of an unreachable broker or result backend into BrokerUnavailableError,
    and a Redis that reached its ``maxmemory`` into RedisFullError."""
    try:
        yield
    except (OperationalError, ChannelError) as exc:
        full = redis_full(exc, str(app.conf.broker_url))
        if full is not None:
            raise full from exc
        if isinstance(exc, ChannelError):
            raise
        raise broker_unavailable(app, exc) from exc
    except RuntimeError as exc:
        # The Redis result backend gives up on an unreachable server with a bare RuntimeError
        # whose cause is the connection error.
        if is_connection_error(exc.__cause__):
            raise broker_unavailable(app, exc.__cause__) from exc
        raise


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class SendOptions:
    """The options of one dispatch (``apply_async``), checked once, when made.

    Raises:
        DispatchError: an option has the wrong type or an impossible value.
    """

    #: Seconds to wait before running.
    countdown: float | None = None
    #: When to run (timezone-aware).
    eta: dt.datetime | None = None
    #: Seconds (or a datetime) after which the task is dropped unrun.
    expires: float | dt.datetime | None = None
    #: The queue to send to instead of the routed one.
    queue: str | None = None
    #: 0 (lowest) to 9.
    priority: int | None = None
    #: The id to give the task.
    task_id: str | None = None
    #: Hard time limit in seconds, for this call.
    time_limit: float | None = None
    #: Soft time limit in seconds, for this call.
    soft_time_limit: float | None = None
    #: Send at most once per key (one task only, not a workflow).
    idempotency_key: str | None = None
    #: Sent with the failed task's id if the task fails (Celery's ``link_error``).
    on_error: Node | None = None

    def __post_init__(self) -> None:
        for name, check in _CHECKS.items():
            value = getattr(self, name)
            if value is not None:
                check(name, value)
        if self.idempotency_key is not None:
            idempotency.check_key(self.idempotency_key)

    def celery(self, app: Celery) -> dict[str, Any]:
        """The options as Celery's keyword arguments for ``app`` (without the idempotency key).

        Raises:
            VisibilityTimeoutError: the countdown or ETA reaches the broker's visibility timeout.
        """
        options = {name: value for name in _CHECKS if (value := getattr(self, name)) is not None}
        if self.countdown is not None or self.eta is not None:
            _check_visibility(app, self.countdown, self.eta)
        if self.on_error is not None:
            namespace = app_state(app).settings.namespace
            options["link_error"] = self.on_error.to_celery(app, namespace)
        return options


def check_seconds(name: str, value: object) -> None:
    """Refuse ``value`` unless it is a finite number of seconds >= 0 (DispatchError)."""
    if not is_seconds(value):
        msg = f"{name} must be a number of seconds >= 0, got {value!r}"
        raise DispatchError(msg)


def _check_eta(name: str, value: object) -> None:
    if not isinstance(value, dt.datetime) or value.tzinfo is None:
        msg = f"{name} must be a timezone-aware datetime, got {value!r}; use datetime.now(UTC)"
        raise DispatchError(msg)


def _check_expires(name: str, value: object) -> None:
    if not isinstance(value, dt.datetime):
        check_seconds(name, value)


def _check_name(name: str, value: object) -> None:
    if not isinstance(value, str) or not value:
        msg = f"{name} must be a non-empty string, got {value!r}"
        raise DispatchError(msg)


def _check_priority(name: str, value: object) -> None:
    if not is_count(value, minimum=0) or value not in range(10):
        msg = f"{name} must be an integer from 0 to 9, got {value!r}"
        raise DispatchError(msg)


_CHECKS: dict[str, Callable[[str, object], None]] = {
    "countdown": check_seconds,
    "eta": _check_eta,
    "expires": _check_expires,
    "queue": _check_name,
    "priority": _check_priority,
    "task_id": _check_name,
    "time_limit": check_seconds,
    "soft_time_limit": check_seconds,
}


def visibility_timeout(app: Celery) -> float | None:
    """Seconds before the broker redelivers an unacknowledged message (None: not Redis).

    Read from the app's transport options, so that an app given to ``install()`` reports its own.
    """
    if not is_redis_url(str(app.conf.broker_url or "")):
        return None
    transport: Any = app.conf.broker_transport_options or {}
    return float(transport.get("visibility_timeout", _KOMBU_VISIBILITY_TIMEOUT))


def _check_visibility(app: Celery, countdown: float | None, eta: dt.datetime | None) -> None:
    limit = visibility_timeout(app)
    if limit is None:
        return
    delay = countdown or 0.0
    what = "countdown"
    if eta is not None:
        delay = max(delay, (eta - dt.datetime.now(dt.timezone.utc)).total_seconds())
        what = "eta"
    if delay >= limit:
        msg = (
            f"the {what} of {delay:.1f} s reaches the broker's visibility timeout of "
            f"{limit:.1f} s, so Redis would deliver the message again and again; dispatch it "
            "later from a schedule (Beat) or raise visibility_timeout"
        )
        raise VisibilityTimeoutError(msg)


# -- what to send ---------------------------------------------------------------------------------


class Node:
    """What a typed signature sends: one :class:`Call`, or a workflow turned into Celery canvas."""

    __slots__ = ()

    def to_celery(self, app: Celery, namespace: str) -> Signature[Any]:
        raise NotImplementedError

    def decoder(self) -> Decode:
        raise NotImplementedError

    def label(self) -> str:
        raise NotImplementedError

    def send(self, app: Celery, options: SendOptions | None = None) -> TypedResult[Any]:
        """Send this node to ``app``'s broker."""
        if options is not None and options.idempotency_key is not None:
            msg = "an idempotency key applies to one task, not to a workflow; give it to a step"
            raise DispatchError(msg)
        return self._send(app, (), options)

    def send_with_input(
        self, app: Celery, first: Any, options: SendOptions | None = None
    ) -> TypedResult[Any]:
        """Send this partial node, giving ``first`` as its missing first argument."""
        return self._send(app, (encode(first),), options)

    def _send(
        self, app: Celery, args: tuple[Any, ...], options: SendOptions | None
    ) -> TypedResult[Any]:
        # One producer for the whole workflow, its publishes pipelined to Redis in batches
        # (kombu's Producer.batch; transports without batches publish one by one).
        celery_options = {} if options is None else options.celery(app)
        canvas = self.to_celery(app, app_state(app).settings.namespace)
        with (
            translate_publish_errors(app),
            app.producer_or_acquire() as producer,
            producer.batch(max_size=BATCH_SIZE),
        ):
            raw = canvas.apply_async(args, producer=producer, **celery_options)
        return TypedResult(raw, self.decoder(), name=self.label())


class Call(Node):
    """One task call: the contract's name and codec, and the arguments as JSON data."""

    __slots__ = ("args", "codec", "immutable", "kwargs", "name")

    def __init__(
        self,
        name: str,
        codec: ContractCodec,
        args: Sequence[Any],
        kwargs: dict[str, Any],
        *,
        immutable: bool,
    ) -> None:
        self.name = name
        self.codec = codec
        self.args = tuple(args)
        self.kwargs = kwargs
        self.immutable = immutable

    def to_celery(self, app: Celery, namespace: str) -> Signature[Any]:
        return app.signature(
            f"{namespace}.{self.name}", self.args, self.kwargs, immutable=self.immutable
        )

    def decoder(self) -> Decode:
        return self.codec.decode_result

    def label(self) -> str:
        return self.name

    def send(self, app: Celery, options: SendOptions | None = None) -> TypedResult[Any]:
        # The hot path: straight to send_task, no canvas object. A contract that returns None
        # stores no result and subscribes to none. The app's send_task raises the library's
        # errors already (every app with a state has it wrapped: _typed_send).
        name = f"{app_state(app).settings.namespace}.{self.name}"
        ignored = self.codec.returns_none
        if options is None:
            raw = app.send_task(name, self.args, self.kwargs, ignore_result=ignored)
            return TypedResult(raw, self.codec.decode_result, name=name, ignored=ignored)
        celery_options = options.celery(app)
        if options.idempotency_key is not None:
            return self._send_once(app, name, celery_options, options.idempotency_key)
        raw = app.send_task(name, self.args, self.kwargs, ignore_result=ignored, **celery_options)
        return TypedResult(raw, self.codec.decode_result, name=name, ignored=ignored)

    def _send_once(
        self, app: Celery, name: str, options: dict[str, Any], key: str
    ) -> TypedResult[Any]:
        """Publish unless a task with ``key`` was dispatched within the key's TTL."""
        task_id = options.get("task_id") or str(uuid.uuid4())
        ignored = self.codec.returns_none
        earlier = idempotency.claim(app, name, key, task_id)
        if earlier is not None:
            raw = app.AsyncResult(earlier)
        else:
            options = options | {"task_id": task_id, "headers": {idempotency.HEADER: key}}
            try:
                with translate_publish_errors(app):
                    raw = app.send_task(
                        name, self.args, self.kwargs, ignore_result=ignored, **options
                    )
            except BaseException:
                idempotency.release(app, name, key, task_id)
                raise
        return TypedResult(raw, self.codec.decode_result, name=name, ignored=ignored)
