"""Task contracts: a task declared once, with typed parameters and result.

``task_contract(name)`` turns a typed stub function into a :class:`TaskRef`. Hosts import the
contract (never the implementation) and dispatch with arguments the type checkers verify; the
worker binds an implementation with :meth:`TaskRef.implement`, checked against the contract too.
The task's wire name is ``<namespace>.<name>``: the namespace comes from the app's settings.

Binding an implementation to its Celery task is the worker side (:mod:`crawjud_tasks._delivery`):
this module records what :meth:`TaskRef.implement` was asked (an :class:`Implementation`) and
hands it to the binder the assembly installed with :func:`use_binder`.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Iterator
from typing import (
    TYPE_CHECKING,
    Any,
    Concatenate,
    Generic,
    Literal,
    ParamSpec,
    Protocol,
    TypeVar,
    overload,
)

from crawjud_tasks._checks import is_count
from crawjud_tasks._codec import ContractCodec
from crawjud_tasks._dispatch import Call
from crawjud_tasks._guards import is_instance
from crawjud_tasks._results import TypedResult
from crawjud_tasks._signatures import ImmutableSig, PartialSig, Sig
from crawjud_tasks._state import app_state, default_app
from crawjud_tasks.errors import ContractError, PayloadError

if TYPE_CHECKING:
    from celery import Celery

    from crawjud_tasks._retry import RetryPolicy

__all__ = [
    "DEFAULT_MAX_DELIVERIES",
    "Binder",
    "Delivery",
    "Implementation",
    "TaskRef",
    "declared_contracts",
    "task_contract",
    "use_binder",
]

P = ParamSpec("P")
Q = ParamSpec("Q")
R = TypeVar("R")
A = TypeVar("A")

Delivery = Literal["at_most_once", "at_least_once"]
#: Deliveries of one message before it counts as poison.
DEFAULT_MAX_DELIVERIES = 3

#: Every contract declared in this process, by name: the worker start-up check reads it.
_CONTRACTS: dict[str, TaskRef[Any, Any]] = {}


@dataclasses.dataclass(frozen=True, slots=True)
class Implementation:
    """What :meth:`TaskRef.implement` (or ``implement_bound``) was asked to bind on an app."""

    #: The contract.
    ref: TaskRef[Any, Any]
    #: The implementation.
    func: Callable[..., Any]
    #: Whether ``func`` receives the Celery task first.
    bound: bool
    retry: RetryPolicy | None
    time_limit: float | None
    soft_time_limit: float | None
    #: At-least-once only: the name of the lease that guards a run, from the task and the
    #: run's decoded arguments (``None``: one lease per message, ``task:<name>:<id>:<retry>``).
    lease: Callable[..., str] | None = None


class Binder(Protocol):
    """Binds an :class:`Implementation` to its Celery task on ``app`` (the worker side)."""

    def __call__(self, app: Celery, implementation: Implementation, /) -> None: ...


_BINDER: list[Binder] = []


def use_binder(binder: Binder) -> None:
    """Make ``binder`` bind every implementation from now on (the assembly installs it)."""
    _BINDER[:] = [binder]


def declared_contracts() -> Iterator[TaskRef[Any, Any]]:
    """Every contract declared in this process so far."""
    return iter(list(_CONTRACTS.values()))


def task_contract(
    name: str,
    *,
    delivery: Delivery = "at_most_once",
    max_deliveries: int = DEFAULT_MAX_DELIVERIES,
) -> Callable[[Callable[P, R]], TaskRef[P, R]]:
    """Declare a task: the decorated stub's parameters and return type are the contract.

    Args:
        name: The task's name under the namespace, e.g. ``"bots.execute_bot"`` (sent as
            ``crawjud.bots.execute_bot``); its first segment picks the queue (``bots``,
            ``mail`` or ``maintenance``; anything else goes to the default queue).
        delivery: ``"at_most_once"`` (Celery's default: the message is acknowledged when the
            worker takes it, so a worker that dies loses it) or ``"at_least_once"`` (for tasks
            with side effects: acknowledged after the run, requeued if the worker dies, counted,
            dropped as a poison message after ``max_deliveries``, and guarded by a run lease;
            see "Retries and delivery").
        max_deliveries: With ``"at_least_once"``, deliveries of one message before it is
            dropped with :class:`PoisonMessageError`.

    Raises:
        ContractError: the name is not dotted words, another contract has it, or an option is
            invalid.

    Example::

        @task_contract("reports.monthly")
        def monthly_report(year: int, month: int) -> Report:
            raise NotImplementedError
    """
    if not is_instance(name, str) or not all(part.isidentifier() for part in name.split(".")):
        msg = f"a contract name is dotted identifiers like 'reports.monthly', got {name!r}"
        raise ContractError(msg)
    if delivery not in ("at_most_once", "at_least_once"):
        msg = f"delivery must be 'at_most_once' or 'at_least_once', got {delivery!r}"
        raise ContractError(msg)
    if not is_count(max_deliveries):
        msg = f"max_deliveries must be an integer >= 1, got {max_deliveries!r}"
        raise ContractError(msg)

    def declare(func: Callable[P, R]) -> TaskRef[P, R]:
        previous = _CONTRACTS.get(name)
        if previous is not None and _origin(previous.func) != _origin(func):
            msg = (
                f"the contract name {name!r} is taken by {_origin(previous.func)}; "
                f"give {_origin(func)} another name"
            )
            raise ContractError(msg)
        shared = _Shared(ContractCodec(func, name), delivery, max_deliveries)
        ref: TaskRef[P, R] = TaskRef(func, name, _shared=shared)
        _CONTRACTS[name] = ref
        return ref

    return declare


def _origin(func: Callable[..., Any]) -> str:
    return f"{func.__module__}.{func.__qualname__}"


class _Shared:
    """What every copy of one contract (one per ``using(app)``) shares."""

    __slots__ = ("codec", "delivery", "local", "max_deliveries")

    codec: ContractCodec
    delivery: Delivery
    max_deliveries: int
    local: Callable[..., Any] | None

    def __init__(
        self,
        codec: ContractCodec,
        delivery: Delivery = "at_most_once",
        max_deliveries: int = DEFAULT_MAX_DELIVERIES,
    ) -> None:
        self.codec = codec
        self.delivery = delivery
        self.max_deliveries = max_deliveries
        #: The implementation bound in this process, for ``ref(...)``.
        self.local = None


class TaskRef(Generic[P, R]):
    """A declared task: dispatch it, compose it into workflows, or implement it on a worker.

    Calling a ``TaskRef`` directly runs its implementation in this process (like calling a Celery
    task); dispatching goes through :meth:`delay`, :meth:`s` and :meth:`si`.
    """

    __slots__ = ("__weakref__", "_app", "_shared", "func", "name")

    def __init__(
        self, func: Callable[P, R], name: str, *, app: Celery | None = None, _shared: Any = None
    ) -> None:
        self.func = func
        self.name = name
        self._app = app
        self._shared: _Shared = _shared or _Shared(ContractCodec(func, name))

    def __repr__(self) -> str:
        return f"<TaskRef {self.name}{self._shared.codec.signature}>"

    @property
    def codec(self) -> ContractCodec:
        """The contract's payload codec (its parameters and declared types)."""
        return self._shared.codec

    @property
    def delivery(self) -> Delivery:
        """How the contract's messages are delivered (``task_contract(..., delivery=)``)."""
        return self._shared.delivery

    @property
    def max_deliveries(self) -> int:
        """Deliveries of one message before it is dropped as poison (at-least-once)."""
        return self._shared.max_deliveries

    def full_name(self, app: Celery | None = None) -> str:
        """The task's wire name on ``app`` (``<namespace>.<name>``)."""
        return f"{app_state(app or self._app or default_app()).settings.namespace}.{self.name}"

    def using(self, app: Celery) -> TaskRef[P, R]:
        """This contract, dispatched through ``app`` (for processes with several apps)."""
        app_state(app)  # raises the explanation for an app crawjud-tasks does not know
        return TaskRef(self.func, self.name, app=app, _shared=self._shared)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run the implementation bound in this process, here and now (no broker involved).

        Raises:
            ContractError: no implementation of this contract is bound in this process.
        """
        local = self._shared.local
        if local is None:
            msg = (
                f"{self.name} has no implementation in this process that runs without its task "
                "(implement_bound ones need it); dispatch it with .delay(...), or bind one "
                "with .implement(app)"
            )
            raise ContractError(msg)
        return local(*args, **kwargs)  # type: ignore[no-any-return]  # the implementation is Callable[P, R]

    # -- dispatch -----------------------------------------------------------------------------

    @overload
    def s(self, *args: P.args, **kwargs: P.kwargs) -> Sig[R]: ...  # type: ignore[overload-overlap]  # a complete call wins; the runtime uses the same rule
    @overload
    def s(
        self: Callable[Concatenate[A, Q], R], *args: Q.args, **kwargs: Q.kwargs
    ) -> PartialSig[A, R]: ...
    def s(self, *args: Any, **kwargs: Any) -> Sig[R] | PartialSig[Any, R]:
        """A signature: complete (all arguments given) or partial (missing its first argument,
        which the previous step of a chain provides).

        Raises:
            PayloadError: the arguments fit neither a complete nor a partial call.
        """
        codec = self._shared.codec
        try:
            codec.bind(args, kwargs)
        except TypeError as complete_error:
            try:
                codec.bind((None, *args), kwargs)
            except TypeError:
                raise self._misfit(complete_error) from None
            return PartialSig(self._call(args, kwargs, immutable=False, partial=True), self._app)
        return Sig(self._call(args, kwargs, immutable=False), self._app)

    def si(self, *args: P.args, **kwargs: P.kwargs) -> ImmutableSig[R]:
        """A complete signature that ignores the previous step's result in a chain.

        Raises:
            PayloadError: the arguments do not fit the contract's parameters.
        """
        self._check_complete(args, kwargs)
        return ImmutableSig(self._call(args, kwargs, immutable=True), self._app)

    def delay(self, *args: P.args, **kwargs: P.kwargs) -> TypedResult[R]:
        """Send the task now with these arguments (options: ``.s(...).apply_async(...)``).

        Raises:
            PayloadError: the arguments do not fit the contract's parameters.
            BrokerUnavailableError: the broker did not answer.
        """
        self._check_complete(args, kwargs)
        return self._call(args, kwargs, immutable=False).send(self._app or default_app())

    async def adelay(self, *args: P.args, **kwargs: P.kwargs) -> TypedResult[R]:
        """:meth:`delay` for asyncio code: the event loop is not blocked while the message is
        published (kombu has no asyncio producer: the publish runs in a worker thread, as
        ``asyncio.to_thread`` does; see "Using crawjud-tasks from a web service").

        Raises:
            PayloadError: the arguments do not fit the contract's parameters (before any thread).
            BrokerUnavailableError: the broker did not answer.
        """
        self._check_complete(args, kwargs)
        return await asyncio.to_thread(self.delay, *args, **kwargs)

    def _check_complete(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        try:
            self._shared.codec.bind(args, kwargs)
        except TypeError as exc:
            raise self._misfit(exc) from None

    def _misfit(self, error: TypeError) -> PayloadError:
        signature = self._shared.codec.signature
        return PayloadError(f"{self.name}: {error} (the contract takes {signature})")

    def result(self, task_id: str, *, app: Celery | None = None) -> TypedResult[R]:
        """The handle of an earlier dispatch of this task, from its id."""
        target = app or self._app or default_app()
        codec = self._shared.codec
        name = self.full_name(target)
        return TypedResult(
            target.AsyncResult(task_id),
            codec.decode_result,
            name=name,
            ignored=codec.returns_none,
        )

    def _call(
        self,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        immutable: bool,
        partial: bool = False,
    ) -> Call:
        codec = self._shared.codec
        encoded_args, encoded_kwargs = codec.encode_call(args, kwargs, partial=partial)
        return Call(self.name, codec, encoded_args, encoded_kwargs, immutable=immutable)

    # -- implementation -----------------------------------------------------------------------

    def implement(
        self,
        app: Celery,
        *,
        retry: RetryPolicy | None = None,
        time_limit: float | None = None,
        soft_time_limit: float | None = None,
    ) -> Callable[[Callable[P, R]], Callable[P, R]]:
        """Bind ``func`` as this contract's implementation on ``app`` (a decorator).

        The type checkers verify ``func`` against the contract. The decorated function is
        returned unchanged. On the worker, each message's arguments are checked and rebuilt into
        the declared types first; a message that does not fit fails with :class:`PayloadError`
        and is never retried.

        Args:
            app: The worker's app (from ``create_app`` or ``install``).
            retry: Retry a failed run through the broker as this policy says (the library
                computes each countdown, fractional seconds kept); ``None``: never retried.
            time_limit: Hard time limit in seconds (the worker kills the child after it).
            soft_time_limit: Soft time limit in seconds (``SoftTimeLimitExceeded`` is raised).

        Raises:
            ContractError: the contract is already implemented on ``app``, or cannot be sent as
                JSON.
            VisibilityTimeoutError: the retry policy waits as long as the broker's visibility
                timeout.
        """

        def bind(func: Callable[P, R]) -> Callable[P, R]:
            self._bind(
                app,
                func,
                bound=False,
                retry=retry,
                time_limit=time_limit,
                soft_time_limit=soft_time_limit,
            )
            return func

        return bind

    def implement_bound(
        self,
        app: Celery,
        *,
        retry: RetryPolicy | None = None,
        time_limit: float | None = None,
        soft_time_limit: float | None = None,
        lease: Callable[Concatenate[Any, P], str] | None = None,
    ) -> Callable[[Callable[Concatenate[Any, P], R]], Callable[Concatenate[Any, P], R]]:
        """Like :meth:`implement`, for a function that receives the Celery task first
        (``task.request`` holds the delivery's id, retries, hostname...).

        Args:
            lease: For an at-least-once contract: the name of the lease that guards a run,
                computed from the task and the run's decoded arguments, like the
                implementation (e.g. ``lambda task, run_id: f"run:{run_id}"``), instead of one
                lease per message. The delivery guard takes
                it (freeing it first if its holder is a dead process of this machine, waiting
                for a holder that let it run down), renews it with the heartbeat that keeps the
                message from being redelivered, and gives it back when the run ends; a live
                holder fails this run with :class:`DuplicateRunError`. The run reads the lease
                with ``crawjud_tasks._delivery.held_lease(task)``.
        """

        def bind(func: Callable[Concatenate[Any, P], R]) -> Callable[Concatenate[Any, P], R]:
            self._bind(
                app,
                func,
                bound=True,
                retry=retry,
                time_limit=time_limit,
                soft_time_limit=soft_time_limit,
                lease=lease,
            )
            return func

        return bind

    def _bind(
        self,
        app: Celery,
        func: Callable[..., Any],
        *,
        bound: bool,
        retry: RetryPolicy | None,
        time_limit: float | None,
        soft_time_limit: float | None,
        lease: Callable[..., str] | None = None,
    ) -> None:
        if not _BINDER:
            msg = "no binder is installed: import crawjud_tasks (its assembly installs it)"
            raise ContractError(msg)
        implementation = Implementation(
            self, func, bound, retry, time_limit, soft_time_limit, lease
        )
        _BINDER[0](app, implementation)
        if not bound:
            self._shared.local = func
