"""Taking a run's lease (or a chunk's): at most one live holder, and a dead one's taken over.

A holder that is a process of this machine that no longer exists is evicted at once; a holder
elsewhere that let its lease run down past half its ttl (a live one renews every third) has
most likely died, and the lease is awaited; a live holder means the run is a duplicate.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from crawjud_tasks._execution import run_lease_owner, run_lease_ttl
from crawjud_tasks._lease import evict, lease
from crawjud_tasks.errors import DuplicateRunError, LeaseHeldError, LeaseLostError

if TYPE_CHECKING:
    from celery import Celery

    from crawjud_tasks._lease import Lease

__all__ = ["take_run_lease"]

_LOG = logging.getLogger("crawjud_tasks.bots")


def take_run_lease(
    app: Celery, key: str, run_id: str, on_lost: Callable[[LeaseLostError], None]
) -> Lease:
    """Take the lease ``key`` of run ``run_id`` for this process.

    Raises:
        DuplicateRunError: a live holder has it.
        BrokerUnavailableError: Redis did not answer.
    """
    ttl = run_lease_ttl(app)
    deadline = time.monotonic() + ttl + 1.0
    while True:
        run_lease = lease(app, key, ttl, owner=run_lease_owner(os.getpid()), on_lost=on_lost)
        try:
            return run_lease.acquire()
        except LeaseHeldError as exc:
            holder, expires_in = exc.holder, exc.expires_in
            if holder is not None and dead_here(holder):
                _LOG.warning("run %s: the lease of the dead process %s is freed", run_id, holder)
                evict(app, key, holder)
                continue
            # A live holder renews every third of the ttl; one that let the lease run down
            # past half of it has most likely died: wait for the lease to expire.
            if expires_in is None or expires_in > ttl / 2 or time.monotonic() > deadline:
                msg = (
                    f"run {run_id!r} is running already ({exc}); cancel it with "
                    "cancel_run() or give this run another run_id"
                )
                raise DuplicateRunError(msg) from exc
            time.sleep(min(0.5, max(0.05, expires_in)))


def dead_here(holder: str) -> bool:
    """Whether ``holder`` (``host:pid``) is a process of this machine that no longer exists."""
    host, _, pid = holder.rpartition(":")
    if host != run_lease_owner(0).rpartition(":")[0] or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
