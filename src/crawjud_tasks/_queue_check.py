"""At worker start: a worker that consumes none of the CrawJUD queues says which ones to add."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from crawjud_tasks._state import app_state

if TYPE_CHECKING:
    from collections.abc import Collection

    from celery import Celery

__all__ = ["report_unconsumed_queues"]

logger = logging.getLogger("crawjud_tasks.worker")


def report_unconsumed_queues(app: Celery, consumed: Collection[str]) -> list[str]:
    """Log (at WARNING) each queue that a CrawJUD task on ``app`` is routed to, one line per
    queue with the ``-Q`` to add, when the worker consumes none of them; return those queues.

    A worker that consumes some of them (a worker dedicated to one domain) says nothing: the
    others are another worker's. Messages routed to an unconsumed queue wait there, unanswered
    (``ping`` times out), which is what this line explains.
    """
    prefix = f"{app_state(app).settings.namespace}."
    router = app.amqp.router
    routed: dict[str, list[str]] = {}
    for name in sorted(app.tasks):
        if not name.startswith(prefix):
            continue
        route: Any = router.route({}, name)
        queue = route.get("queue")
        queue_name = getattr(queue, "name", queue)
        if isinstance(queue_name, str):
            routed.setdefault(queue_name, []).append(name)
    if not routed or not set(routed).isdisjoint(consumed):
        return []
    for queue_name, names in routed.items():
        logger.warning(
            "queue %s (%d CrawJUD tasks, e.g. %s) is not consumed by this worker: its tasks wait "
            "there unanswered; add -Q %s (or start a worker without -Q)",
            queue_name,
            len(names),
            names[0],
            queue_name,
        )
    return list(routed)
