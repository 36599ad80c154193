"""Taking a maintenance lease: one operation at a time per target.

A holder that is a process of this machine that no longer exists (a CLI run that was killed)
is evicted at once, so the next run need not wait for the lease's ttl; a live holder, here or
elsewhere, means the operation is running and the new one is refused.
"""

from __future__ import annotations

import contextlib
from collections.abc import Generator
from typing import TYPE_CHECKING

from crawjud_tasks._lease import dead_here, evict, lease
from crawjud_tasks.errors import LeaseHeldError

if TYPE_CHECKING:
    from celery import Celery

    from crawjud_tasks._lease import Lease

__all__ = ["LEASE_TTL", "take_lease"]

#: Seconds a maintenance lease outlives its holder's last renewal.
LEASE_TTL = 60.0


@contextlib.contextmanager
def take_lease(app: Celery, key: str) -> Generator[Lease, None, None]:
    """Hold the lease ``key`` for the ``with`` block; released at its end.

    Raises:
        LeaseHeldError: a live holder has it.
        LeaseLostError: the block ended normally but the lease was lost meanwhile.
        BrokerUnavailableError: Redis did not answer.
    """
    held = _acquire(app, key)
    try:
        yield held
    except BaseException as exc:
        held.__exit__(type(exc), exc, exc.__traceback__)
        raise
    held.__exit__(None, None, None)


def _acquire(app: Celery, key: str) -> Lease:
    for _ in range(2):
        held = lease(app, key, LEASE_TTL)
        try:
            return held.acquire()
        except LeaseHeldError as exc:
            if exc.holder is None or not dead_here(exc.holder):
                raise
            evict(app, key, exc.holder)
    return lease(app, key, LEASE_TTL).acquire()
