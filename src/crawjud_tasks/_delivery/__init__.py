"""Delivery: the worker side of each guarantee, one module each (Dramatiq's ``middleware/``).

- ``_binding``: binding a contract's implementation to its Celery task (the binder that
  :meth:`TaskRef.implement <crawjud_tasks.TaskRef.implement>` calls).
- ``_execution``: the call, and the :class:`Guarantee` hook each guarantee implements.
- ``_replay``: idempotent replay of a completed idempotency key.
- ``_retries``: broker retries, with the countdown the retry policy computes.
- ``_at_least_once``: delivery counting, poison records and their query.
- ``_leases``: the run's lease, its heartbeat's touch of the unacked index, the takeover of a
  dead holder's lease.
- ``_terminal``: the ``on_terminal`` hook, called when a message ends for good without the
  implementation's return.
- ``_outcomes``: a run's outcome writes (end-of-run mark, result) retried through a short
  outage of Redis, within a budget bounded by the visibility timeout.
- ``_worker_hooks`` (with ``_worker_requests``, ``_worker_logging`` and ``_reconnect``): what a
  worker prepares at start-up.
- ``_transport``: the broker transport of Redis brokers, which refuses and records a malformed
  message instead of letting it stop the worker (named by class path in the app's
  ``broker_transport``, so only a process that connects loads it).
- ``_poison``: writing a poison record.

This module is the library's way in: nothing outside ``_delivery/`` imports its modules.
"""

from __future__ import annotations

from crawjud_tasks._delivery._at_least_once import PoisonRecord, poison_messages
from crawjud_tasks._delivery._binding import bind_contract
from crawjud_tasks._delivery._execution import Guarantee
from crawjud_tasks._delivery._leases import (
    dead_here,
    held_lease,
    lease_owner,
    lease_ttl,
    take_lease,
)
from crawjud_tasks._delivery._worker_hooks import prepare_worker, report_missing_implementations

__all__ = [
    "Guarantee",
    "PoisonRecord",
    "bind_contract",
    "dead_here",
    "held_lease",
    "lease_owner",
    "lease_ttl",
    "poison_messages",
    "prepare_worker",
    "report_missing_implementations",
    "take_lease",
]
