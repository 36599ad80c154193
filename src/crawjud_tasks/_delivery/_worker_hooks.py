"""Worker start-up: what a worker prepares once, at ``worker_init``.

- Report every declared contract routed to a queue the worker consumes that has no
  implementation on the app (its messages would be dropped as unknown).
- Give at-least-once tasks the request that frees a dead pool process's run lease
  (:mod:`._worker_requests`).
- Keep message payloads out of the log lines about refused messages (:mod:`._worker_logging`).
- A revoked message of a task with an ``on_terminal`` hook calls it (:mod:`._terminal`).
- Retry result writes through a short outage of Redis (:mod:`._outcomes`), and keep consuming
  after the broker connection drops (:mod:`._reconnect`).

The worker-only modules are imported here, when the worker starts: a host service never loads
Celery's worker modules.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from crawjud_tasks._contracts import declared_contracts
from crawjud_tasks._delivery._outcomes import store_patiently
from crawjud_tasks._queue_check import report_unconsumed_queues
from crawjud_tasks._redis_checks import check_worker_redis
from crawjud_tasks._state import has_state

if TYPE_CHECKING:
    from celery import Celery

__all__ = ["prepare_worker", "report_missing_implementations"]

logger = logging.getLogger("crawjud_tasks.contracts")

#: Celery's consumer (``worker_consumer``), and ours, which survives a broker blip
#: (:mod:`._reconnect`); a host's own consumer class is left alone.
_CELERY_CONSUMER = "celery.worker.consumer:Consumer"
RECONNECTING_CONSUMER = "crawjud_tasks._delivery._reconnect:ReconnectingConsumer"


def prepare_worker(sender: Any, **_: Any) -> None:
    """The ``worker_init`` receiver: prepare the worker of a crawjud-tasks app (its Redis
    checked first: a worker that would lose messages, or cannot log in, says so at once)."""
    app = sender.app
    if has_state(app):
        check_worker_redis(app)
        # Worker-only modules: a host service never imports Celery's worker.
        from celery.signals import task_revoked  # noqa: PLC0415

        from crawjud_tasks._delivery._terminal import on_task_revoked  # noqa: PLC0415
        from crawjud_tasks._delivery._worker_logging import hide_message_payloads  # noqa: PLC0415
        from crawjud_tasks._delivery._worker_requests import use_run_requests  # noqa: PLC0415

        consumed = {str(name) for name in app.amqp.queues.consume_from}
        report_missing_implementations(app, consumed)
        report_unconsumed_queues(app, consumed)
        use_run_requests(app)
        hide_message_payloads()
        task_revoked.connect(on_task_revoked, weak=False, dispatch_uid="crawjud-on-terminal")
        store_patiently(app)
        if sender.consumer_cls == _CELERY_CONSUMER:
            sender.consumer_cls = RECONNECTING_CONSUMER


def report_missing_implementations(app: Celery, consumed: set[str]) -> list[str]:
    """Log (at ERROR) every declared contract routed to a queue in ``consumed`` that has no
    implementation on ``app``, and return their names."""
    missing: list[str] = []
    router = app.amqp.router
    for ref in declared_contracts():
        name = ref.full_name(app)
        if name in app.tasks:
            continue
        route: Any = router.route({}, name)
        queue = route.get("queue")
        queue_name = getattr(queue, "name", queue)
        if queue_name in consumed:
            missing.append(name)
            logger.error(
                "%s is routed to queue %s, which this worker consumes, but has no "
                "implementation here: its messages would be dropped as unknown; bind one with "
                "%s.implement(app) in the module the worker loads",
                name,
                queue_name,
                ref.func.__name__,
            )
    return missing
