"""What runs on the worker when a contract's task is delivered: the call, and its guarantees.

The plain path (no retry policy, at-most-once delivery, no idempotency key in the message) adds
no Redis command to what Celery does: check and rebuild the arguments, call the implementation,
encode the result. The rest is paid for only by the tasks that ask for it, each guarantee in its
own module behind one hook (:class:`Guarantee`), wrapped around the call once, when the contract
is bound, outermost first:

- :class:`~._replay.Replay`: idempotent replay of a completed idempotency key;
- :class:`~._at_least_once.AtLeastOnce`: delivery counting, poison records, the run's lease;
- :class:`~._retries.BrokerRetries`: a failure the policy retries goes back to the broker.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from celery.exceptions import Ignore, Reject
from celery.states import IGNORED, REJECTED

from crawjud_tasks._codec import encode
from crawjud_tasks._delivery._at_least_once import AtLeastOnce
from crawjud_tasks._delivery._replay import Replay
from crawjud_tasks._delivery._retries import BrokerRetries
from crawjud_tasks._idempotency import HEADER as IDEMPOTENCY_HEADER
from crawjud_tasks._tasks import OBSERVERS

if TYPE_CHECKING:
    from crawjud_tasks._codec import ContractCodec
    from crawjud_tasks._contracts import Delivery
    from crawjud_tasks._delivery._terminal import Terminal
    from crawjud_tasks._retry import RetryPolicy

__all__ = ["Execution", "Guarantee", "Step"]

#: One stage of a run: ``(task, decoded args, decoded kwargs) -> encoded result``.
Step = Callable[[Any, tuple[Any, ...], dict[str, Any]], Any]


class Guarantee(Protocol):
    """One delivery guarantee: wraps the next stage of a run (built once per contract)."""

    def wrap(self, proceed: Step, /) -> Step: ...


@dataclasses.dataclass(frozen=True, slots=True)
class Execution:
    """How one contract's implementation runs on the worker."""

    codec: ContractCodec
    func: Callable[..., Any]
    bound: bool
    retry: RetryPolicy | None
    delivery: Delivery
    max_deliveries: int
    #: At-least-once: the run's lease name from the task and its decoded arguments (None: one
    #: per message).
    lease: Callable[..., str] | None = None
    #: At-least-once: what a message that ends without the implementation's return calls.
    terminal: Terminal | None = None
    #: With ``lease``: what the error of a live duplicate tells to do.
    duplicate_hint: str | None = None

    def guarantees(self) -> list[Guarantee]:
        """The guarantees this contract asks for, outermost first."""
        chain: list[Guarantee] = [Replay()]
        if self.delivery == "at_least_once":
            chain.append(
                AtLeastOnce(self.max_deliveries, self.lease, self.terminal, self.duplicate_hint)
            )
        if self.retry is not None:
            chain.append(BrokerRetries(self.retry))
        return chain

    def runner(self) -> Callable[..., Any]:
        """The function Celery runs (bound: it receives the task first)."""
        plain = self.retry is None and self.delivery == "at_most_once"
        call = self._call
        decode = self._decode
        guarded: Step = self._invoke
        for guarantee in reversed(self.guarantees()):
            guarded = guarantee.wrap(guarded)

        def run(task: Any, *args: Any, **kwargs: Any) -> Any:
            request = task.request
            key = getattr(request, IDEMPOTENCY_HEADER, None)
            try:
                if (plain and key is None) or request.called_directly:
                    # Called in-process (map_chunks runs each item so): no message of its own
                    # to count, lease or retry; the message that carried the chunk has those.
                    return call(task, args, kwargs)
                args, kwargs = decode(args, kwargs)
                return guarded(task, args, kwargs)
            except (Reject, Ignore) as exc:
                # Celery calls no task hook for these ends: tell the run observer here.
                if OBSERVERS and not request.called_directly:
                    state = REJECTED if isinstance(exc, Reject) else IGNORED
                    OBSERVERS[0].ended(task, request.id, state, exc)
                raise

        return run

    # -- the plain call (the hot path) ---------------------------------------------------------

    def _call(self, task: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if args or kwargs or self.codec.signature.parameters:
            args, kwargs = self.codec.decode_arguments(args, kwargs)
        result = self.func(task, *args, **kwargs) if self.bound else self.func(*args, **kwargs)
        return None if self.codec.returns_none else encode(result)

    # -- with guarantees: decoded once, then through the chain -----------------------------------

    def _decode(
        self, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        if args or kwargs or self.codec.signature.parameters:
            return self.codec.decode_arguments(args, kwargs)
        return args, kwargs

    def _invoke(self, task: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        result = self.func(task, *args, **kwargs) if self.bound else self.func(*args, **kwargs)
        return None if self.codec.returns_none else encode(result)
