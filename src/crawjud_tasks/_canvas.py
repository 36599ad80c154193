"""Typed signatures and workflow builders, turned into ordinary Celery canvas when sent.

``Sig[R]`` is a complete call whose result is ``R``; ``ImmutableSig[R]`` one that ignores the
previous step's result; ``PartialSig[A, R]`` a call still missing its first argument, of type
``A``, which the previous step of a chain provides. Chaining a step whose input does not match the
previous step's output is a type error in mypy and pyright (see the "Typed tasks" guide).

A signature records what to send, not where: the app is the one given with ``contract.using(app)``,
or the process's only app, resolved when the workflow is sent.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar, overload

from celery import chain as celery_chain
from celery import chord as celery_chord
from celery import group as celery_group

from crawjud_tasks import _idempotency as idempotency
from crawjud_tasks._bulk import BATCH_SIZE, BULK_OPTIONS, publish_group
from crawjud_tasks._codec import ContractCodec, encode
from crawjud_tasks._dispatch import send_options, translate_publish_errors
from crawjud_tasks._guards import is_instance
from crawjud_tasks._results import TypedResult
from crawjud_tasks._state import app_state, default_app
from crawjud_tasks.errors import ContractError, DispatchError

if TYPE_CHECKING:
    from celery import Celery
    from celery.canvas import Signature

__all__ = [
    "Call",
    "ImmutableSig",
    "PartialSig",
    "Sig",
    "chord",
    "group",
    "map_chunks",
    "pipeline",
    "register_canvas_tasks",
]

R_co = TypeVar("R_co", covariant=True)
A_contra = TypeVar("A_contra", contravariant=True)
A = TypeVar("A")
R = TypeVar("R")
S = TypeVar("S")
T1 = TypeVar("T1")
T2 = TypeVar("T2")
T3 = TypeVar("T3")
T4 = TypeVar("T4")
T5 = TypeVar("T5")
T6 = TypeVar("T6")

Decode = Callable[[Any], Any]


# -- what to send ---------------------------------------------------------------------------------


class Node:
    """One part of a workflow, turned into Celery canvas for an app when sent."""

    __slots__ = ()

    def to_celery(self, app: Celery, namespace: str) -> Signature[Any]:
        raise NotImplementedError

    def decoder(self) -> Decode:
        raise NotImplementedError

    def label(self) -> str:
        raise NotImplementedError

    def send(
        self, app: Celery, options: dict[str, Any], idempotency_key: str | None = None
    ) -> TypedResult[Any]:
        """Send this node to ``app``'s broker with Celery's ``options``."""
        if idempotency_key is not None:
            msg = "an idempotency key applies to one task, not to a workflow; give it to a step"
            raise DispatchError(msg)
        return self._send(app, (), options)

    def send_with_input(self, app: Celery, first: Any, options: dict[str, Any]) -> TypedResult[Any]:
        """Send this partial node, giving ``first`` as its missing first argument."""
        return self._send(app, (encode(first),), options)

    def _send(
        self, app: Celery, args: tuple[Any, ...], options: dict[str, Any]
    ) -> TypedResult[Any]:
        # One producer for the whole workflow, its publishes pipelined to Redis in batches
        # (kombu's Producer.batch; transports without batches publish one by one).
        canvas = self.to_celery(app, app_state(app).settings.namespace)
        with (
            translate_publish_errors(app),
            app.producer_or_acquire() as producer,
            producer.batch(max_size=BATCH_SIZE),
        ):
            raw = canvas.apply_async(args, producer=producer, **options)
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

    def send(
        self, app: Celery, options: dict[str, Any], idempotency_key: str | None = None
    ) -> TypedResult[Any]:
        # The hot path: straight to send_task, no canvas object. A contract that returns None
        # stores no result and subscribes to none.
        name = f"{app_state(app).settings.namespace}.{self.name}"
        ignored = self.codec.returns_none
        if idempotency_key is not None:
            return self._send_once(app, name, options, idempotency_key)
        with translate_publish_errors(app):
            raw = app.send_task(name, self.args, self.kwargs, ignore_result=ignored, **options)
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


@dataclass(frozen=True, slots=True)
class _Chain(Node):
    steps: tuple[Node, ...]

    def to_celery(self, app: Celery, namespace: str) -> Signature[Any]:
        return celery_chain(*(step.to_celery(app, namespace) for step in self.steps), app=app)

    def decoder(self) -> Decode:
        return self.steps[-1].decoder()

    def label(self) -> str:
        return " | ".join(step.label() for step in self.steps)


@dataclass(frozen=True, slots=True)
class _Group(Node):
    members: tuple[Node, ...]

    def to_celery(self, app: Celery, namespace: str) -> Signature[Any]:
        return celery_group([member.to_celery(app, namespace) for member in self.members], app=app)

    def decoder(self) -> Decode:
        decoders = [member.decoder() for member in self.members]

        def decode(values: Any) -> list[Any]:
            return [each(value) for each, value in zip(decoders, values, strict=True)]

        return decode

    def label(self) -> str:
        return f"group({len(self.members)})"

    def send(
        self, app: Celery, options: dict[str, Any], idempotency_key: str | None = None
    ) -> TypedResult[Any]:
        calls = [member for member in self.members if isinstance(member, Call)]
        if (
            idempotency_key is not None
            or len(calls) < len(self.members)
            or options.keys() - BULK_OPTIONS
        ):
            return Node.send(self, app, options, idempotency_key)
        # A group of plain calls takes the bulk path: one producer, pipelined publishes.
        namespace = app_state(app).settings.namespace
        batch = [(f"{namespace}.{call.name}", call.args, call.kwargs) for call in calls]
        raw = publish_group(app, batch, options, options.get("task_id"))
        return TypedResult(raw, self.decoder(), name=self.label())


@dataclass(frozen=True, slots=True)
class _Chord(Node):
    header: _Group
    body: Node
    on_error: Node | None = None

    def to_celery(self, app: Celery, namespace: str) -> Signature[Any]:
        body = self.body.to_celery(app, namespace)
        if self.on_error is not None:
            body.on_error(self.on_error.to_celery(app, namespace))
        return celery_chord(self.header.to_celery(app, namespace), body, app=app)

    def decoder(self) -> Decode:
        return self.body.decoder()

    def label(self) -> str:
        return f"chord({self.header.label()}, {self.body.label()})"


@dataclass(frozen=True, slots=True)
class _MapChunks(Node):
    call: Call
    chunks: tuple[list[Any], ...]

    def to_celery(self, app: Celery, namespace: str) -> Signature[Any]:
        target = f"{namespace}.{self.call.name}"
        queue = _queue_of(app, target)
        rest = (list(self.call.args), self.call.kwargs)
        header = [
            app.signature(f"{namespace}.{_MAP_CHUNK}", (target, chunk, *rest), queue=queue)
            for chunk in self.chunks
        ]
        body = app.signature(f"{namespace}.{_FLATTEN}", queue=queue)
        return celery_chord(header, body, app=app)

    def decoder(self) -> Decode:
        decode = self.call.codec.decode_result

        def decode_all(values: Any) -> list[Any]:
            return [decode(value) for value in values]

        return decode_all

    def label(self) -> str:
        return f"map_chunks({self.call.name}, {len(self.chunks)} chunks)"


def _queue_of(app: Celery, name: str) -> str | None:
    route: Any = app.amqp.router.route({}, name)
    queue: Any = route.get("queue")
    return None if queue is None else str(getattr(queue, "name", queue))


# -- the typed signatures -------------------------------------------------------------------------


def _joined_app(left: Celery | None, right: Celery | None) -> Celery | None:
    if left is not None and right is not None and left is not right:
        msg = "these signatures were made with .using() of two different apps; use one app"
        raise ContractError(msg)
    return left or right


def _steps(node: Node) -> tuple[Node, ...]:
    return node.steps if isinstance(node, _Chain) else (node,)


def _chained(left: Node, right: Node) -> _Chain:
    return _Chain((*_steps(left), *_steps(right)))


def _next_step(other: object) -> PartialSig[Any, Any] | ImmutableSig[Any]:
    if isinstance(other, PartialSig | ImmutableSig):
        return other  # pyright: ignore[reportUnknownVariableType]  # checked by the caller's types
    if isinstance(other, Sig):
        msg = (
            "a complete signature cannot follow another step: it would receive the previous "
            "result as an extra argument; leave out its first argument (.s()) or use .si()"
        )
        raise ContractError(msg)
    msg = f"a workflow step must be a signature made with .s() or .si(), got {other!r}"
    raise ContractError(msg)


class Sig(Generic[R_co]):
    """A complete task call (or workflow) whose result is ``R_co``."""

    __slots__ = ("app", "node")

    def __init__(self, node: Node, app: Celery | None = None) -> None:
        #: What to send (turned into Celery canvas when sent).
        self.node = node
        #: The app given with ``using(app)``, or None for the process's only app.
        self.app = app

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.node.label()}>"

    def apply_async(
        self,
        *,
        countdown: float | None = None,
        eta: dt.datetime | None = None,
        expires: float | dt.datetime | None = None,
        queue: str | None = None,
        priority: int | None = None,
        task_id: str | None = None,
        time_limit: float | None = None,
        soft_time_limit: float | None = None,
        idempotency_key: str | None = None,
    ) -> TypedResult[R_co]:
        """Send it, with options (never the task's own arguments: those are in the signature).

        Args:
            countdown: Seconds to wait before running (below the broker's visibility timeout).
            eta: When to run (a timezone-aware datetime; below the visibility timeout too).
            expires: Seconds (or a datetime) after which the task is dropped unrun.
            queue: Send to this queue instead of the contract's routed queue.
            priority: 0 (lowest) to 9.
            task_id: The id to give the task (default: a new UUID).
            time_limit: Hard time limit in seconds, for this call.
            soft_time_limit: Soft time limit in seconds, for this call.
            idempotency_key: Send at most once per key: a later dispatch with the same key
                (within ``idempotency_ttl``) returns the first task's handle and sends nothing,
                and a redelivered message whose key completed is not run again. One task only,
                not a workflow.

        Raises:
            DispatchError: an option is invalid (VisibilityTimeoutError for a long countdown).
            BrokerUnavailableError: the broker (or the Redis keeping the keys) did not answer.
        """
        app = self.app or default_app()
        options = send_options(
            app,
            countdown=countdown,
            eta=eta,
            expires=expires,
            queue=queue,
            priority=priority,
            task_id=task_id,
            time_limit=time_limit,
            soft_time_limit=soft_time_limit,
        )
        if idempotency_key is not None:
            idempotency_key = idempotency.check_key(idempotency_key)
        return self.node.send(app, options, idempotency_key)

    def delay(self) -> TypedResult[R_co]:
        """Send it now, with no options."""
        return self.node.send(self.app or default_app(), {})

    def to_celery(self, app: Celery | None = None) -> Signature[Any]:
        """The ordinary Celery canvas this signature sends (for tools that want it)."""
        target = app or self.app or default_app()
        return self.node.to_celery(target, app_state(target).settings.namespace)

    def then(self, other: PartialSig[R_co, S]) -> Sig[S]:
        """Chain ``other`` after this: it receives this result as its first argument."""
        step = _next_step(other)
        return Sig(_chained(self.node, step.node), _joined_app(self.app, step.app))

    @overload
    def __or__(self, other: PartialSig[R_co, S]) -> Sig[S]: ...
    @overload
    def __or__(self, other: ImmutableSig[S]) -> Sig[S]: ...
    def __or__(self, other: PartialSig[Any, Any] | ImmutableSig[Any]) -> Sig[Any]:
        """``a | b``: chain ``b`` after ``a`` (a partial receives ``a``'s result)."""
        step = _next_step(other)
        return Sig(_chained(self.node, step.node), _joined_app(self.app, step.app))


class ImmutableSig(Sig[R_co]):
    """A complete call that ignores the previous step's result (from ``.si()``)."""

    __slots__ = ()


class PartialSig(Generic[A_contra, R_co]):
    """A call (or workflow) still missing its first argument, of type ``A_contra``."""

    __slots__ = ("app", "node")

    def __init__(self, node: Node, app: Celery | None = None) -> None:
        #: What to send (turned into Celery canvas when sent).
        self.node = node
        #: The app given with ``using(app)``, or None for the process's only app.
        self.app = app

    def __repr__(self) -> str:
        return f"<PartialSig {self.node.label()}>"

    def delay(self, first: A_contra, /) -> TypedResult[R_co]:
        """Send it now, with ``first`` as its missing first argument."""
        return self.node.send_with_input(self.app or default_app(), first, {})

    def apply_async(
        self,
        first: A_contra,
        /,
        *,
        countdown: float | None = None,
        eta: dt.datetime | None = None,
        expires: float | dt.datetime | None = None,
        queue: str | None = None,
        priority: int | None = None,
        task_id: str | None = None,
        time_limit: float | None = None,
        soft_time_limit: float | None = None,
    ) -> TypedResult[R_co]:
        """Send it with ``first`` as its missing first argument, and options (as
        :meth:`Sig.apply_async`, without ``idempotency_key``: give the key to a complete
        signature)."""
        app = self.app or default_app()
        options = send_options(
            app,
            countdown=countdown,
            eta=eta,
            expires=expires,
            queue=queue,
            priority=priority,
            task_id=task_id,
            time_limit=time_limit,
            soft_time_limit=soft_time_limit,
        )
        return self.node.send_with_input(app, first, options)

    def then(self, other: PartialSig[R_co, S]) -> PartialSig[A_contra, S]:
        """Chain ``other`` after this: it receives this result as its first argument."""
        step = _next_step(other)
        return PartialSig(_chained(self.node, step.node), _joined_app(self.app, step.app))

    @overload
    def __or__(self, other: PartialSig[R_co, S]) -> PartialSig[A_contra, S]: ...
    @overload
    def __or__(self, other: ImmutableSig[S]) -> PartialSig[A_contra, S]: ...
    def __or__(self, other: PartialSig[Any, Any] | ImmutableSig[Any]) -> PartialSig[Any, Any]:
        """``a | b``: chain ``b`` after ``a``."""
        step = _next_step(other)
        return PartialSig(_chained(self.node, step.node), _joined_app(self.app, step.app))


# -- builders -------------------------------------------------------------------------------------


@overload
def pipeline(first: Sig[T1], /) -> Sig[T1]: ...
@overload
def pipeline(first: Sig[T1], s2: PartialSig[T1, T2], /) -> Sig[T2]: ...
@overload
def pipeline(first: Sig[T1], s2: PartialSig[T1, T2], s3: PartialSig[T2, T3], /) -> Sig[T3]: ...
@overload
def pipeline(
    first: Sig[T1], s2: PartialSig[T1, T2], s3: PartialSig[T2, T3], s4: PartialSig[T3, T4], /
) -> Sig[T4]: ...
@overload
def pipeline(
    first: Sig[T1],
    s2: PartialSig[T1, T2],
    s3: PartialSig[T2, T3],
    s4: PartialSig[T3, T4],
    s5: PartialSig[T4, T5],
    /,
) -> Sig[T5]: ...
@overload
def pipeline(
    first: Sig[T1],
    s2: PartialSig[T1, T2],
    s3: PartialSig[T2, T3],
    s4: PartialSig[T3, T4],
    s5: PartialSig[T4, T5],
    s6: PartialSig[T5, T6],
    /,
) -> Sig[T6]: ...
def pipeline(first: Sig[Any], /, *steps: PartialSig[Any, Any]) -> Sig[Any]:
    """Chain steps: each receives the previous result as its first argument (up to six steps;
    ``a | b | ...`` has no limit)."""
    if not is_instance(first, Sig):
        msg = f"a pipeline starts with a complete signature (.s(...) or .si(...)), got {first!r}"
        raise ContractError(msg)
    result: Sig[Any] = first
    for step in steps:
        result = result.then(step)
    return result


@overload
def group(sigs: Iterable[PartialSig[A, R]], /) -> PartialSig[A, list[R]]: ...
@overload
def group(sigs: Iterable[Sig[R]], /) -> Sig[list[R]]: ...
def group(sigs: Iterable[Sig[Any]] | Iterable[PartialSig[Any, Any]], /) -> Any:
    """Run signatures in parallel; the result is the list of their results, in order.

    A group of partial signatures is itself partial: in a chain, each member receives the
    previous result.
    """
    members: list[Sig[Any] | PartialSig[Any, Any]] = list(sigs)
    partial = [isinstance(member, PartialSig) for member in members]
    if any(partial) and not all(partial):
        msg = "a group mixes partial and complete signatures; make them all one or the other"
        raise ContractError(msg)
    app: Celery | None = None
    for member in members:
        if not is_instance(member, (Sig, PartialSig)):
            msg = f"a group takes signatures made with .s() or .si(), got {member!r}"
            raise ContractError(msg)
        app = _joined_app(app, member.app)
    node = _Group(tuple(member.node for member in members))
    if members and all(partial):
        return PartialSig[Any, Any](node, app)
    return Sig[Any](node, app)


def chord(
    header: Iterable[Sig[R]],
    body: PartialSig[list[R], S],
    /,
    *,
    on_error: PartialSig[str, Any] | None = None,
) -> Sig[S]:
    """Run ``header`` in parallel, then ``body`` with the list of their results.

    When a header task fails, ``body`` does not run, the chord's result is a failure, and
    ``on_error`` (a signature missing one argument: the id of the chord's body task) is sent
    exactly once.
    """
    members = list(header)
    app: Celery | None = None
    for member in members:
        if not is_instance(member, Sig):
            msg = f"a chord header takes complete signatures, got {member!r}"
            raise ContractError(msg)
        app = _joined_app(app, member.app)
    if not is_instance(body, PartialSig):
        msg = f"a chord body is a signature missing its first argument (.s()), got {body!r}"
        raise ContractError(msg)
    app = _joined_app(app, body.app)
    errback: Node | None = None
    if on_error is not None:
        if not is_instance(on_error, PartialSig):
            msg = f"on_error is a signature missing its first argument (.s()), got {on_error!r}"
            raise ContractError(msg)
        app = _joined_app(app, on_error.app)
        errback = on_error.node
    node = _Chord(_Group(tuple(member.node for member in members)), body.node, errback)
    return Sig(node, app)


if TYPE_CHECKING:

    class _OneArgumentContract(Protocol[A_contra, R_co]):
        """A contract (``TaskRef``) that can be called with one positional argument."""

        def __call__(self, first: A_contra, /) -> R_co: ...
        @property
        def codec(self) -> ContractCodec: ...


def map_chunks(
    task: PartialSig[A, R] | _OneArgumentContract[A, R], items: Iterable[A], size: int, /
) -> Sig[list[R]]:
    """Run ``task`` once per item, ``size`` items per message, on any number of workers.

    The result is the list of every item's result, in the order of ``items``. ``task`` is a
    contract that takes one argument (``map_chunks(contract, ...)``), or a signature missing its
    first argument (``contract.s()`` or ``contract.s(option=...)``): each item is given as that
    argument. Each chunk runs on the queue ``task`` is routed to.
    """
    call, app = _map_target(task)
    if is_instance(size, bool) or not is_instance(size, int) or size < 1:
        msg = f"map_chunks needs a chunk size >= 1, got {size!r}"
        raise DispatchError(msg)
    encoded = [encode(item) for item in items]
    chunks = tuple(encoded[start : start + size] for start in range(0, len(encoded), size))
    return Sig(_MapChunks(call, chunks), app)


def _map_target(task: Any) -> tuple[Call, Celery | None]:
    """The one contract call that map_chunks sends per chunk, and the app it was made for.

    Raises:
        ContractError: ``task`` is neither a contract that takes one argument nor one contract's
            signature missing its first argument.
    """
    if not is_instance(task, PartialSig) and hasattr(task, "codec"):
        # A contract (TaskRef): each item is its first argument, as for contract.s().
        codec: ContractCodec = task.codec
        try:
            codec.bind((None,), {})
        except TypeError:
            msg = (
                f"map_chunks gives each item as the one argument of {task.name}, which takes "
                f"{codec.signature}; bind its other arguments with .s(option=...)"
            )
            raise ContractError(msg) from None
        signature: Sig[Any] | PartialSig[Any, Any] = task.s()
        return _map_target(PartialSig(signature.node, signature.app))
    if not is_instance(task, PartialSig) or not isinstance(task.node, Call):
        msg = (
            "map_chunks takes a contract that takes one argument, or one contract's signature "
            f"missing its first argument (contract.s()), got {task!r}"
        )
        raise ContractError(msg)
    app: Celery | None = task.app
    return task.node, app


# -- the library's own canvas tasks ---------------------------------------------------------------

_MAP_CHUNK = "canvas.map_chunk"
_FLATTEN = "canvas.flatten"


def register_canvas_tasks(app: Celery) -> None:
    """Register the tasks ``map_chunks`` sends (``<namespace>.canvas.*``) on ``app``."""
    from crawjud_tasks._tasks import CrawjudTask  # noqa: PLC0415  (the task base imports celery)

    namespace = app_state(app).settings.namespace

    def map_chunk(
        target: str, items: list[Any], args: list[Any], kwargs: dict[str, Any]
    ) -> list[Any]:
        task = app.tasks.get(target)
        if task is None:
            msg = f"{target} has no implementation on this worker; bind one with implement(app)"
            raise ContractError(msg)
        return [task(item, *args, **kwargs) for item in items]

    def flatten(chunks: list[list[Any]]) -> list[Any]:
        return [value for chunk in chunks for value in chunk]

    app.task(name=f"{namespace}.{_MAP_CHUNK}", base=CrawjudTask, shared=False)(map_chunk)
    app.task(name=f"{namespace}.{_FLATTEN}", base=CrawjudTask, shared=False)(flatten)
