"""The lease that guards an at-least-once run, and its heartbeat's touch of the unacked index.

A run holds one lease, renewed by a heartbeat: by default ``task:<name>:<id>:<retry>`` (one per
message), or the name the implementation computes from the run's arguments
(``implement_bound(app, lease=...)``, e.g. ``run:<run id>``). Each renewal also moves the
message's entry in kombu's unacked index to now, so the visibility timeout never redelivers the
message of a live run; once the worker dies the entry ages and the message is redelivered. The
lease lives at most half the visibility timeout past its last renewal, so the redelivered copy
finds it expired.

Taking a named lease (:func:`take_lease`) frees it first when its holder is a process of this
machine that no longer exists, and waits for a holder elsewhere that let it run down past half
its ttl (a live one renews every third): such a holder has most likely died.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from crawjud_tasks._dispatch import visibility_timeout
from crawjud_tasks._lease import dead_here, evict, lease
from crawjud_tasks._state import app_state
from crawjud_tasks.errors import LeaseHeldError, LeaseLostError

if TYPE_CHECKING:
    from celery import Celery

    from crawjud_tasks._lease import Lease

__all__ = [
    "RUN_LEASE_TTL",
    "dead_here",
    "held_lease",
    "hold",
    "lease_owner",
    "lease_ttl",
    "take_lease",
    "unacked_toucher",
]

#: A run's lease outlives its last renewal by this many seconds (renewed every third of it), or
#: by half the visibility timeout when that is shorter (see :func:`lease_ttl`).
RUN_LEASE_TTL = 30.0
#: The request attribute that holds the run's lease while it runs (see :func:`held_lease`).
_HELD = "crawjud_lease"

_LOG = logging.getLogger("crawjud_tasks.worker")


def lease_owner(pid: int) -> str:
    """The label of the run lease held by process ``pid`` of this machine."""
    return f"{socket.gethostname()}:{pid}"


def lease_ttl(app: Celery) -> float:
    """Seconds a run's lease outlives its last renewal on ``app``'s workers.

    :data:`RUN_LEASE_TTL`, or half the visibility timeout when that is shorter: the heartbeat (a
    third of the ttl) then touches the message's unacknowledged entry well within the visibility
    timeout, and the lease of a worker that died has expired before the broker redelivers its
    message, so the new delivery is not taken for a live duplicate.
    """
    limit = visibility_timeout(app)
    return RUN_LEASE_TTL if limit is None else min(RUN_LEASE_TTL, limit / 2)


def take_lease(
    app: Celery,
    name: str,
    *,
    on_lost: Callable[[LeaseLostError], None] | None = None,
    on_renew: Callable[[], None] | None = None,
) -> Lease:
    """Take the run lease ``name`` for this process, taking over a dead holder's.

    Raises:
        LeaseHeldError: a live holder has it.
        BrokerUnavailableError: Redis did not answer.
    """
    ttl = lease_ttl(app)
    deadline = time.monotonic() + ttl + 1.0
    while True:
        run_lease = lease(
            app, name, ttl, owner=lease_owner(os.getpid()), on_lost=on_lost, on_renew=on_renew
        )
        try:
            return run_lease.acquire()
        except LeaseHeldError as exc:
            holder, expires_in = exc.holder, exc.expires_in
            if holder is not None and dead_here(holder):
                _LOG.warning("lease %s: the lease of the dead process %s is freed", name, holder)
                evict(app, name, holder)
                continue
            # A live holder renews every third of the ttl; one that let the lease run down
            # past half of it has most likely died: wait for the lease to expire.
            if expires_in is None or expires_in > ttl / 2 or time.monotonic() > deadline:
                raise
            time.sleep(min(0.5, max(0.05, expires_in)))


def hold(task: Any, run_lease: Lease | None) -> None:
    """Record ``run_lease`` as the lease of ``task``'s current run (``None``: it ended)."""
    setattr(task.request, _HELD, run_lease)


def held_lease(task: Any) -> Lease | None:
    """The lease the delivery guard holds for ``task``'s current run (``None`` if none).

    For an implementation bound with ``implement_bound(app, lease=...)``: it may check the
    lease (:meth:`Lease.check`, no Redis command) between steps of a long run.
    """
    held: Lease | None = getattr(task.request, _HELD, None)
    return held


def unacked_toucher(app: Celery, task: Any) -> Callable[[], None] | None:
    """A renewal hook that keeps the run's message out of Redis's visibility-timeout restore.

    kombu's Redis transport restores a delivered message once its entry in the unacked index is
    older than the visibility timeout. While the run's heartbeat lives, it moves that entry's
    time to now; once the worker dies, the entry ages and the message is redelivered.
    """
    transport: Any = app.conf.broker_transport_options or {}
    index = transport.get("unacked_index_key", "unacked_index")  # kombu's default name
    properties: Any = task.request.properties or {}
    tag = properties.get("delivery_tag")
    client = app_state(app).link.broker
    if index is None or tag is None or client is None:
        return None

    def touch() -> None:
        client.zadd(index, {tag: time.time()}, xx=True)

    return touch
