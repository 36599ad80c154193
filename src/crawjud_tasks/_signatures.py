"""Typed signatures, turned into ordinary Celery canvas when sent.

``Sig[R]`` is a complete call whose result is ``R``; ``ImmutableSig[R]`` one that ignores the
previous step's result; ``PartialSig[A, R]`` a call still missing its first argument, of type
``A``, which the previous step of a chain provides. Chaining a step whose input does not match the
previous step's output is a type error in mypy and pyright (see the "Typed tasks" guide).

A signature records what to send, not where: the app is the one given with ``contract.using(app)``,
or the process's only app, resolved when the workflow is sent. Workflow builders (``group``,
``chord``, ``map_chunks``...) are in :mod:`crawjud_tasks._workflows`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

from celery import chain as celery_chain

from crawjud_tasks._dispatch import Decode, Node, SendOptions
from crawjud_tasks._guards import is_instance
from crawjud_tasks._state import app_state, default_app
from crawjud_tasks.errors import ContractError

if TYPE_CHECKING:
    from celery import Celery
    from celery.canvas import Signature

    from crawjud_tasks._results import TypedResult

__all__ = ["ImmutableSig", "PartialSig", "Sig", "errback_of", "joined_app"]

R_co = TypeVar("R_co", covariant=True)
A_contra = TypeVar("A_contra", contravariant=True)
S = TypeVar("S")


@dataclass(frozen=True, slots=True)
class _Chain(Node):
    steps: tuple[Node, ...]

    def to_celery(self, app: Celery, namespace: str) -> Signature[Any]:
        return celery_chain(*(step.to_celery(app, namespace) for step in self.steps), app=app)

    def decoder(self) -> Decode:
        return self.steps[-1].decoder()

    def label(self) -> str:
        return " | ".join(step.label() for step in self.steps)


def joined_app(left: Celery | None, right: Celery | None) -> Celery | None:
    """The one app two signatures were made for (``None``: the process's only app).

    Raises:
        ContractError: they were made with ``.using()`` of two different apps.
    """
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


def errback_of(
    app: Celery | None, on_error: PartialSig[str, Any] | None
) -> tuple[Celery | None, Node | None]:
    """The app and node of an ``on_error`` signature (a partial signature, or None).

    Raises:
        ContractError: ``on_error`` is not a partial signature, or is of another app.
    """
    if on_error is None:
        return app, None
    if not is_instance(on_error, PartialSig):
        msg = f"on_error is a signature missing its first argument (.s()), got {on_error!r}"
        raise ContractError(msg)
    return joined_app(app, on_error.app), on_error.node


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
        on_error: PartialSig[str, Any] | None = None,
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
            on_error: A signature of an error-callback contract, missing one ``str`` argument:
                if the task fails, it is sent with the failed task's id (Celery's
                ``link_error``), once per failure that ends the task (not per retry).

        Raises:
            DispatchError: an option is invalid (VisibilityTimeoutError for a long countdown).
            ContractError: ``on_error`` is not a partial signature, or is of another app.
            BrokerUnavailableError: the broker (or the Redis keeping the keys) did not answer.
        """
        app, errback = errback_of(self.app, on_error)
        options = SendOptions(
            countdown=countdown,
            eta=eta,
            expires=expires,
            queue=queue,
            priority=priority,
            task_id=task_id,
            time_limit=time_limit,
            soft_time_limit=soft_time_limit,
            idempotency_key=idempotency_key,
            on_error=errback,
        )
        return self.node.send(app or default_app(), options)

    def delay(self) -> TypedResult[R_co]:
        """Send it now, with no options."""
        return self.node.send(self.app or default_app())

    def to_celery(self, app: Celery | None = None) -> Signature[Any]:
        """The ordinary Celery canvas this signature sends (for tools that want it)."""
        target = app or self.app or default_app()
        return self.node.to_celery(target, app_state(target).settings.namespace)

    def then(self, other: PartialSig[R_co, S]) -> Sig[S]:
        """Chain ``other`` after this: it receives this result as its first argument."""
        step = _next_step(other)
        return Sig(_chained(self.node, step.node), joined_app(self.app, step.app))

    @overload
    def __or__(self, other: PartialSig[R_co, S]) -> Sig[S]: ...
    @overload
    def __or__(self, other: ImmutableSig[S]) -> Sig[S]: ...
    def __or__(self, other: PartialSig[Any, Any] | ImmutableSig[Any]) -> Sig[Any]:
        """``a | b``: chain ``b`` after ``a`` (a partial receives ``a``'s result)."""
        step = _next_step(other)
        return Sig(_chained(self.node, step.node), joined_app(self.app, step.app))


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
        return self.node.send_with_input(self.app or default_app(), first)

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
        on_error: PartialSig[str, Any] | None = None,
    ) -> TypedResult[R_co]:
        """Send it with ``first`` as its missing first argument, and options (as
        :meth:`Sig.apply_async`, without ``idempotency_key``: give the key to a complete
        signature)."""
        app, errback = errback_of(self.app, on_error)
        options = SendOptions(
            countdown=countdown,
            eta=eta,
            expires=expires,
            queue=queue,
            priority=priority,
            task_id=task_id,
            time_limit=time_limit,
            soft_time_limit=soft_time_limit,
            on_error=errback,
        )
        return self.node.send_with_input(app or default_app(), first, options)

    def then(self, other: PartialSig[R_co, S]) -> PartialSig[A_contra, S]:
        """Chain ``other`` after this: it receives this result as its first argument."""
        step = _next_step(other)
        return PartialSig(_chained(self.node, step.node), joined_app(self.app, step.app))

    @overload
    def __or__(self, other: PartialSig[R_co, S]) -> PartialSig[A_contra, S]: ...
    @overload
    def __or__(self, other: ImmutableSig[S]) -> PartialSig[A_contra, S]: ...
    def __or__(self, other: PartialSig[Any, Any] | ImmutableSig[Any]) -> PartialSig[Any, Any]:
        """``a | b``: chain ``b`` after ``a``."""
        step = _next_step(other)
        return PartialSig(_chained(self.node, step.node), joined_app(self.app, step.app))
