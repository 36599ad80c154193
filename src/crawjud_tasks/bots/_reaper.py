"""The safety net: ending the runs their workers abandoned (``bots.reap_runs``).

Every terminal path of a run's message ends the run (:mod:`~crawjud_tasks.bots._ending`); what
is left is a run whose worker vanished with its message (the message lost by a Redis without
persistence, a hook that could not reach Redis). :func:`reap` looks only at the index of running
runs (``runs:running``, never a SCAN) and ends a run when all of these hold:

- its state still says ``running``;
- no lease of it is held (the run's, nor a chunk's);
- nothing was written for longer than the broker's visibility timeout plus the run lease's ttl
  (its last event, or its start);
- no message of it waits in its queues or in the broker's unacknowledged messages.

Each worker runs it once as it starts (``worker_ready``); a schedule may run it periodically.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import time
from typing import TYPE_CHECKING, Any

import msgspec

from crawjud_tasks._delivery import lease_ttl
from crawjud_tasks._dispatch import visibility_timeout
from crawjud_tasks._keys import run_lease_name
from crawjud_tasks._state import app_state
from crawjud_tasks.bots._ending import end_run
from crawjud_tasks.bots._store import RunState, RunStore
from crawjud_tasks.bots.contracts import execute_bot, finish_run, run_chunk, run_failed

if TYPE_CHECKING:
    from celery import Celery

__all__ = ["ABANDONED", "reap"]

_LOG = logging.getLogger("crawjud_tasks.bots")
#: The reason an abandoned run ends with.
ABANDONED = (
    "the run was abandoned: its worker stopped without ending it, and no message of it is "
    "left to deliver"
)
#: Run ids read from the index at a time.
_PAGE = 500
#: The most queued messages looked through; past it no run is ended (it may be queued).
_MAX_MESSAGES = 200_000
#: kombu's Redis transport: the separator and the steps of its priority queues.
_PRIORITY_SEPARATOR = "\x06\x16"
_PRIORITY_STEPS = (3, 6, 9)


def reap(app: Celery) -> list[str]:
    """End the runs their workers abandoned (see the module docstring); their ids.

    Raises:
        BrokerUnavailableError: Redis did not answer.
    """
    stale = (visibility_timeout(app) or 0.0) + lease_ttl(app)
    now = time.time()
    candidates: dict[str, RunState] = {}
    for run_id in _running(app):
        store = RunStore(app, run_id)
        state = store.read_state()
        if state is None or state.finished:
            store.ended()
            continue
        if _leased(app, store, run_id):
            continue
        started = state.started_at.timestamp() if state.started_at else 0.0
        if now - max(started, store.last_activity() or 0.0) < stale:
            continue
        candidates[run_id] = state
    if not candidates:
        return []
    queued = _queued(app, candidates)
    ended: list[str] = []
    for run_id in candidates:
        if run_id in queued:
            continue
        if end_run(app, run_id, ABANDONED) is not None:
            ended.append(run_id)
    if ended:
        _LOG.warning("%d abandoned runs were ended: %s", len(ended), ", ".join(ended))
    return ended


def _running(app: Celery) -> list[str]:
    state = app_state(app)
    key = state.keys.runs_running()
    found: list[str] = []
    start = 0
    while True:
        with state.redis_errors():
            raw: Any = state.redis.zrange(key, start, start + _PAGE - 1)  # pyright: ignore[reportUnknownMemberType]  (redis-py leaves zrange's options unannotated)
        found += [member.decode() for member in raw]
        if len(raw) < _PAGE:
            return found
        start += _PAGE


def _leased(app: Celery, store: RunStore, run_id: str) -> bool:
    """Whether a holder has the run's lease, or a chunk's."""
    state = app_state(app)
    parameters = store.parameters()
    chunks = parameters.parallelism if parameters is not None else 1
    names = [run_lease_name(run_id)]
    if chunks > 1:
        names += [run_lease_name(run_id, number) for number in range(chunks)]
    with state.redis_errors():
        held: Any = state.redis.exists(*(state.keys.lease(name) for name in names))
    return bool(held)


def _queued(app: Celery, candidates: dict[str, RunState]) -> set[str]:
    """The candidates with a message waiting in their queues or unacknowledged (all of them,
    when that cannot be told)."""
    state = app_state(app)
    client: Any = state.link.broker
    if client is None:
        return set(candidates)
    by_task = {s.task_id: run_id for run_id, s in candidates.items() if s.task_id}
    needles = {f'"{run_id}"'.encode(): run_id for run_id in candidates}
    found: set[str] = set()
    seen = 0

    def look(raw: bytes) -> None:
        task_id, body = _parts(raw)
        if task_id in by_task:
            found.add(by_task[task_id])
        for needle, run_id in needles.items():
            if needle in body:
                found.add(run_id)

    with state.redis_errors():
        for queue in _queues(app):
            start = 0
            while True:
                raw: Any = client.lrange(queue, start, start + _PAGE - 1)
                for message in raw:
                    look(message)
                seen += len(raw)
                if len(raw) < _PAGE or seen > _MAX_MESSAGES:
                    break
                start += _PAGE
        unacked = state.keys.kombu_transport()["unacked_key"]
        for _, entry in client.hscan_iter(unacked, count=_PAGE):
            seen += 1
            look(entry)
            if seen > _MAX_MESSAGES:
                break
    if seen > _MAX_MESSAGES:
        _LOG.warning("over %d messages queued: abandoned runs are left for later", _MAX_MESSAGES)
        return set(candidates)
    return found


def _queues(app: Celery) -> list[str]:
    """The Redis lists of the queues the run contracts go to (each priority's too)."""
    names: dict[str, None] = {}
    router: Any = app.amqp.router
    for contract in (execute_bot, run_chunk, finish_run, run_failed):
        route: Any = router.route({}, contract.full_name(app))
        queue = route.get("queue")
        name = str(getattr(queue, "name", queue) or app.conf.task_default_queue)
        names[name] = None
        names.update({f"{name}{_PRIORITY_SEPARATOR}{step}": None for step in _PRIORITY_STEPS})
    return list(names)


class _Envelope(msgspec.Struct):
    """What the reaper reads of a queued message (kombu's Redis transport)."""

    body: str = ""
    headers: dict[str, Any] | None = None
    properties: dict[str, Any] | None = None


#: A queued message, or an unacknowledged entry (the message, its exchange, its routing key).
_QUEUED = msgspec.json.Decoder(_Envelope | tuple[_Envelope, str, str])


def _parts(raw: bytes) -> tuple[str | None, bytes]:
    """A queued message's task id and body (its raw bytes when it is not kombu's)."""
    try:
        decoded = _QUEUED.decode(raw)
    except msgspec.MsgspecError:
        return None, raw
    envelope = decoded if isinstance(decoded, _Envelope) else decoded[0]
    task_id = (envelope.headers or {}).get("id")
    body = envelope.body.encode()
    if (envelope.properties or {}).get("body_encoding") == "base64":
        with contextlib.suppress(ValueError):
            body = base64.b64decode(body)
    return (None if task_id is None else str(task_id)), body
