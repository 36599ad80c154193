"""How a message of an at-least-once contract ended without its implementation's own return.

``implement_bound(app, on_terminal=...)`` names a function the delivery layer calls, with an
:class:`Ending` and the run's decoded arguments, when a message of the contract ends for good
any other way than by the implementation's return:

- ``poison``: delivered more than ``max_deliveries`` times (its process died each time);
- ``error``: the implementation raised (and no retry follows);
- ``time_limit``: the hard time limit killed the pool process;
- ``revoked``: revoked while queued, or terminated while running;
- ``worker_lost``: the pool process died and the message is not delivered again.

A domain whose runs keep a record (a bot run's state) ends that record there, so that no run is
left ``running`` for ever. The call may come from the pool process or from the worker's main
process (in a thread of its own), and more than once for one message: it must be idempotent.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from celery import Celery

__all__ = ["EndCause", "Ending"]

#: Why a message ended without the implementation's return.
EndCause = Literal["poison", "error", "time_limit", "revoked", "worker_lost"]


@dataclasses.dataclass(frozen=True, slots=True)
class Ending:
    """A message that ended for good without the implementation's return."""

    #: The worker's app.
    app: Celery
    #: The task's full name.
    task: str
    #: The message's task id.
    task_id: str
    cause: EndCause
    #: One line for people: what happened.
    reason: str
