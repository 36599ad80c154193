"""Task contracts: a task declared once, with typed parameters and result.

``task_contract(name)`` turns a typed stub function into a :class:`TaskRef`. Hosts import the
contract (never the implementation) and dispatch with arguments the type checkers verify; the
worker binds an implementation with :meth:`TaskRef.implement`, checked against the contract too.
The task's wire name is ``<namespace>.<name>``: the namespace comes from the app's settings.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Concatenate, Generic, ParamSpec, TypeVar, overload

from crawjud_tasks._canvas import Call, ImmutableSig, PartialSig, Sig
from crawjud_tasks._codec import ContractCodec
from crawjud_tasks._dispatch import check_seconds, visibility_timeout
from crawjud_tasks._execution import DEFAULT_MAX_DELIVERIES, Delivery, Execution
from crawjud_tasks._guards import is_instance
from crawjud_tasks._results import TypedResult
from crawjud_tasks._retry import RetryPolicy
from crawjud_tasks._state import app_state, default_app
from crawjud_tasks._tasks import CrawjudTask
from crawjud_tasks.errors import ContractError, DispatchError, PayloadError

if TYPE_CHECKING:
    from celery import Celery

__all__ = ["TaskRef", "find_contract", "report_missing_implementations", "task_contract"]

P = ParamSpec("P")
Q = ParamSpec("Q")
R = TypeVar("R")
A = TypeVar("A")

logger = logging.getLogger("crawjud_tasks.contracts")

#: Every contract declared in this process, by name: the worker start-up check reads it.
_CONTRACTS: dict[str, TaskRef[Any, Any]] = {}


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
    if (
        is_instance(max_deliveries, bool)
        or not is_instance(max_deliveries, int)
        or max_deliveries < 1
    ):
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


def find_contract(name: str) -> TaskRef[Any, Any] | None:
    """The contract declared in this process under ``name`` (``reports.nightly``), if any."""
    return _CONTRACTS.get(name)


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
        return self._call(args, kwargs, immutable=False).send(self._app or default_app(), {})

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
            self._register(
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
    ) -> Callable[[Callable[Concatenate[Any, P], R]], Callable[Concatenate[Any, P], R]]:
        """Like :meth:`implement`, for a function that receives the Celery task first
        (``task.request`` holds the delivery's id, retries, hostname...)."""

        def bind(func: Callable[Concatenate[Any, P], R]) -> Callable[Concatenate[Any, P], R]:
            self._register(
                app,
                func,
                bound=True,
                retry=retry,
                time_limit=time_limit,
                soft_time_limit=soft_time_limit,
            )
            return func

        return bind

    def _register(
        self,
        app: Celery,
        func: Callable[..., Any],
        *,
        bound: bool,
        retry: RetryPolicy | None,
        time_limit: float | None,
        soft_time_limit: float | None,
    ) -> None:
        shared = self._shared
        codec = shared.codec
        codec.check_declaration()
        if retry is not None and not is_instance(retry, RetryPolicy):
            msg = f"retry must be a RetryPolicy, got {retry!r}; e.g. RetryPolicy.court_site()"
            raise ContractError(msg)
        try:
            for option, value in (("time_limit", time_limit), ("soft_time_limit", soft_time_limit)):
                if value is not None:
                    check_seconds(option, value)
        except DispatchError as exc:
            raise ContractError(str(exc)) from None
        name = self.full_name(app)
        if name in app.tasks:
            msg = f"{name} is already implemented on this app; implement a contract once per app"
            raise ContractError(msg)
        if retry is not None:
            limit = visibility_timeout(app)
            if limit is not None:
                retry.check_visibility(limit)
        at_least_once = shared.delivery == "at_least_once"
        execution = Execution(
            codec=codec,
            func=func,
            bound=bound,
            retry=retry,
            delivery=shared.delivery,
            max_deliveries=shared.max_deliveries,
        )
        run = execution.runner()
        _present(run, func, codec)
        options: dict[str, Any] = {
            "name": name,
            "base": CrawjudTask,
            "bind": True,
            "shared": False,
            "typing": False,
            # Results are stored unless the message says otherwise: a contract returning None
            # sent alone asks for none, while in a chain, group or chord its (null) result is
            # what the next step or the chord waits for.
            "ignore_result": False,
            "time_limit": time_limit,
            "soft_time_limit": soft_time_limit,
            # Retries are the policy's to decide, not Celery's default of three.
            "max_retries": None,
            "acks_late": at_least_once,
            "reject_on_worker_lost": at_least_once,
        }
        app.task(**options)(run)
        if not bound:
            shared.local = func


def _present(run: Callable[..., Any], func: Callable[..., Any], codec: ContractCodec) -> None:
    """Give ``run`` the implementation's names and the contract's parameters.

    Celery reads the parameters (to tell old-style error callbacks, for instance) from the
    signature: show it the contract's, behind the task itself.
    """
    for attribute in ("__module__", "__name__", "__qualname__", "__doc__"):
        setattr(run, attribute, getattr(func, attribute, None))
    parameters = list(codec.signature.parameters.values())
    self_parameter = inspect.Parameter("self", inspect.Parameter.POSITIONAL_ONLY)
    run.__signature__ = codec.signature.replace(parameters=[self_parameter, *parameters])  # type: ignore[attr-defined]  # read by inspect.signature


def report_missing_implementations(app: Celery, consumed: set[str]) -> list[str]:
    """Log (at ERROR) every declared contract routed to a queue in ``consumed`` that has no
    implementation on ``app``, and return their names."""
    missing: list[str] = []
    router = app.amqp.router
    for ref in _CONTRACTS.values():
        name = ref.full_name(app)
        if name in app.tasks:
            continue
        route: Any = router.route({}, name)
        queue = route.get("queue")
        queue_name = getattr(queue, "name", queue)
        if queue_name in consumed:
            missing.append(name)
            logger.error(
                "%s is routed to queue %s, which this worker consumes, but has no "
                "implementation here: its messages would be dropped as unknown; bind one with "
                "%s.implement(app) in the module the worker loads",
                name,
                queue_name,
                ref.func.__name__,
            )
    return missing
