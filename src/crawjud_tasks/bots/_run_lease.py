"""Taking a run's lease (or a chunk's): at most one live holder, and a dead one's taken over.

The takeover (a dead holder of this machine evicted at once, one elsewhere that let its lease
run down awaited) is the delivery guard's (:func:`crawjud_tasks._delivery.take_lease`); a live
holder means the run is a duplicate.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from crawjud_tasks._delivery import take_lease
from crawjud_tasks.errors import DuplicateRunError, LeaseHeldError, LeaseLostError

if TYPE_CHECKING:
    from celery import Celery

    from crawjud_tasks._lease import Lease

__all__ = ["take_run_lease"]


def take_run_lease(
    app: Celery, key: str, run_id: str, on_lost: Callable[[LeaseLostError], None]
) -> Lease:
    """Take the lease ``key`` of run ``run_id`` for this process.

    Raises:
        DuplicateRunError: a live holder has it.
        BrokerUnavailableError: Redis did not answer.
    """
    try:
        return take_lease(app, key, on_lost=on_lost)
    except LeaseHeldError as exc:
        msg = (
            f"run {run_id!r} is running already ({exc}); cancel it with "
            "cancel_run() or give this run another run_id"
        )
        raise DuplicateRunError(msg) from exc
