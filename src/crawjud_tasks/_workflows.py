"""Workflow builders: ``pipeline``, ``group``, ``chord`` and ``map_chunks``, over typed signatures.

Each builds a :class:`~crawjud_tasks._dispatch.Node` that is turned into ordinary Celery canvas
when sent. A group of plain calls takes the bulk path (:mod:`crawjud_tasks._bulk`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, overload

from celery import chord as celery_chord
from celery import group as celery_group

from crawjud_tasks._bulk import BULK_OPTIONS, publish_group
from crawjud_tasks._checks import is_count
from crawjud_tasks._codec import ContractCodec, encode
from crawjud_tasks._dispatch import Call, Decode, Node, SendOptions
from crawjud_tasks._guards import is_instance
from crawjud_tasks._results import TypedResult
from crawjud_tasks._signatures import PartialSig, Sig, errback_of, joined_app
from crawjud_tasks._state import app_state
from crawjud_tasks.errors import ContractError, DispatchError

if TYPE_CHECKING:
    from celery import Celery
    from celery.canvas import Signature

__all__ = ["chord", "group", "map_chunks", "pipeline", "register_canvas_tasks"]

A_contra = TypeVar("A_contra", contravariant=True)
R_co = TypeVar("R_co", covariant=True)
A = TypeVar("A")
R = TypeVar("R")
S = TypeVar("S")
T1 = TypeVar("T1")
T2 = TypeVar("T2")
T3 = TypeVar("T3")
T4 = TypeVar("T4")
T5 = TypeVar("T5")
T6 = TypeVar("T6")


# -- the workflow nodes ---------------------------------------------------------------------------


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

    def send(self, app: Celery, options: SendOptions | None = None) -> TypedResult[Any]:
        calls = [member for member in self.members if isinstance(member, Call)]
        if options is not None and options.idempotency_key is not None:
            return Node.send(self, app, options)
        celery_options = {} if options is None else options.celery(app)
        if len(calls) < len(self.members) or celery_options.keys() - BULK_OPTIONS:
            return Node.send(self, app, options)
        # A group of plain calls takes the bulk path: one producer, pipelined publishes.
        namespace = app_state(app).settings.namespace
        batch = [(f"{namespace}.{call.name}", call.args, call.kwargs) for call in calls]
        raw = publish_group(app, batch, celery_options, celery_options.get("task_id"))
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
        app = joined_app(app, member.app)
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
        app = joined_app(app, member.app)
    if not is_instance(body, PartialSig):
        msg = f"a chord body is a signature missing its first argument (.s()), got {body!r}"
        raise ContractError(msg)
    app = joined_app(app, body.app)
    app, errback = errback_of(app, on_error)
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
    if not is_count(size):
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
