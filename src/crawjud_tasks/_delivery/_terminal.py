"""The ``on_terminal`` hook: a message that ends for good without the implementation's return.

``implement_bound(app, on_terminal=...)`` (see :mod:`crawjud_tasks._ending`) gives the task a
:class:`Terminal`. The delivery layer calls it from each path that ends a message so:

- the pool process (:mod:`._at_least_once`): a poison message, an error the implementation
  raised (no retry follows);
- the worker's main process (:mod:`._worker_requests`, :func:`on_task_revoked`): the hard time
  limit, a pool process lost for good, a revoke (queued or terminated). There the hook runs in
  a thread of its own, so the worker's event loop never waits for it.

The hook's errors are logged, never raised: the message's own outcome stays as it is.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from crawjud_tasks._ending import EndCause, Ending

if TYPE_CHECKING:
    from celery import Celery

    from crawjud_tasks._codec import ContractCodec

__all__ = ["TERMINAL", "Terminal", "on_task_revoked", "terminal_of"]

#: The task attribute that holds its :class:`Terminal` (a Celery task option).
TERMINAL = "crawjud_on_terminal"

_LOG = logging.getLogger("crawjud_tasks.worker")


class Terminal:
    """A contract's ``on_terminal`` hook, with the codec that decodes its arguments."""

    __slots__ = ("codec", "hook")

    def __init__(self, hook: Callable[..., None], codec: ContractCodec) -> None:
        self.hook = hook
        self.codec = codec

    def call(  # noqa: PLR0917  (an ending's parts, each told apart)
        self,
        app: Celery,
        task: str,
        task_id: str,
        cause: EndCause,
        reason: str,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        *,
        decoded: bool,
    ) -> None:
        """Call the hook (the arguments decoded first unless ``decoded``); errors are logged."""
        try:
            call_args, call_kwargs = tuple(args), dict(kwargs)
            if not decoded:
                call_args, call_kwargs = self.codec.decode_arguments(call_args, call_kwargs)
            self.hook(Ending(app, task, task_id, cause, reason), *call_args, **call_kwargs)
        except Exception:
            _LOG.exception("%s[%s]: its on_terminal hook (%s) failed", task, task_id, cause)

    def call_soon(  # noqa: PLR0917  (an ending's parts, each told apart)
        self,
        app: Celery,
        task: str,
        task_id: str,
        cause: EndCause,
        reason: str,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
    ) -> None:
        """:meth:`call` with the message's encoded arguments, in a thread of its own (the
        worker's main process)."""
        threading.Thread(
            target=self.call,
            args=(app, task, task_id, cause, reason, args, kwargs),
            kwargs={"decoded": False},
            name=f"crawjud-on-terminal:{task_id}",
            daemon=True,
        ).start()


def terminal_of(task: Any) -> Terminal | None:
    """The ``on_terminal`` hook of ``task`` (``None``: it has none)."""
    terminal: Terminal | None = getattr(task, TERMINAL, None)
    return terminal


def on_task_revoked(
    sender: Any = None,
    request: Any = None,
    terminated: bool = False,
    expired: bool = False,
    **_: Any,
) -> None:
    """The ``task_revoked`` receiver: a revoked message of a task with a hook ends its run."""
    terminal = terminal_of(sender)
    if terminal is None or request is None:
        return
    if expired:
        reason = "its message expired before a worker took it"
    elif terminated:
        reason = "it was revoked and its process terminated"
    else:
        reason = "it was revoked before it started"
    terminal.call_soon(
        sender.app,
        str(sender.name),
        str(request.id),
        "revoked",
        reason,
        request.args or (),
        request.kwargs or {},
    )
