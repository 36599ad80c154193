"""Binding a contract's implementation to its Celery task on an app (the worker side).

:meth:`TaskRef.implement <crawjud_tasks.TaskRef.implement>` records an
:class:`~crawjud_tasks._contracts.Implementation`; :func:`bind_contract` (installed as the
binder by the assembly) checks it and registers the Celery task that runs it through its
guarantees (:mod:`._execution`).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from crawjud_tasks._delivery._execution import Execution
from crawjud_tasks._dispatch import check_seconds, visibility_timeout
from crawjud_tasks._guards import is_instance
from crawjud_tasks._retry import RetryPolicy
from crawjud_tasks._tasks import CrawjudTask
from crawjud_tasks.errors import ContractError, DispatchError

if TYPE_CHECKING:
    from celery import Celery

    from crawjud_tasks._codec import ContractCodec
    from crawjud_tasks._contracts import Implementation

__all__ = ["bind_contract"]


def bind_contract(app: Celery, implementation: Implementation, /) -> None:
    """Register the Celery task that runs ``implementation`` on ``app``.

    Raises:
        ContractError: the contract is already implemented on ``app``, cannot be sent as JSON,
            or an option is invalid.
        VisibilityTimeoutError: the retry policy waits as long as the broker's visibility
            timeout.
    """
    ref = implementation.ref
    codec = ref.codec
    codec.check_declaration()
    retry = implementation.retry
    if retry is not None and not is_instance(retry, RetryPolicy):
        msg = f"retry must be a RetryPolicy, got {retry!r}; e.g. RetryPolicy.court_site()"
        raise ContractError(msg)
    try:
        for option in ("time_limit", "soft_time_limit"):
            value = getattr(implementation, option)
            if value is not None:
                check_seconds(option, value)
    except DispatchError as exc:
        raise ContractError(str(exc)) from None
    if implementation.lease is not None and ref.delivery != "at_least_once":
        msg = (
            f"lease= guards at-least-once runs; declare {ref.name} with "
            "task_contract(..., delivery='at_least_once') or leave lease= out"
        )
        raise ContractError(msg)
    name = ref.full_name(app)
    if name in app.tasks:
        msg = f"{name} is already implemented on this app; implement a contract once per app"
        raise ContractError(msg)
    if retry is not None:
        limit = visibility_timeout(app)
        if limit is not None:
            retry.check_visibility(limit)
    at_least_once = ref.delivery == "at_least_once"
    execution = Execution(
        codec=codec,
        func=implementation.func,
        bound=implementation.bound,
        retry=retry,
        delivery=ref.delivery,
        max_deliveries=ref.max_deliveries,
        lease=implementation.lease,
    )
    run = execution.runner()
    _present(run, implementation.func, codec)
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
        "time_limit": implementation.time_limit,
        "soft_time_limit": implementation.soft_time_limit,
        # Retries are the policy's to decide, not Celery's default of three.
        "max_retries": None,
        "acks_late": at_least_once,
        "reject_on_worker_lost": at_least_once,
    }
    app.task(**options)(run)


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
