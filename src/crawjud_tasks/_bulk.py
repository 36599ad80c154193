"""The bulk path: a group of plain task calls published through one producer, in batches.

Celery sends each member of a group through ``send_task`` (routing, options, a result
subscription per task, two result objects per task) and then ``apply_async`` on the canvas.
Here each message is built and routed once and published through one producer whose writes are
pipelined to Redis (kombu's ``Producer.batch``); results are subscribed to when they are
awaited (``get()`` reads any result already stored before it waits), not one by one at send time.
Messages are the ones Celery builds (``amqp.create_task_message``): workers see no difference.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from celery.result import AsyncResult, GroupResult

from crawjud_tasks._dispatch import BATCH_SIZE, translate_publish_errors

if TYPE_CHECKING:
    from celery import Celery

__all__ = ["BULK_OPTIONS", "BatchCall", "publish_group"]

#: The send options the bulk path handles (``task_id`` names the group); a group sent with any
#: other option goes through Celery.
BULK_OPTIONS = frozenset({"countdown", "eta", "priority", "queue", "task_id"})

#: (full task name, JSON args, JSON kwargs)
BatchCall = tuple[str, Sequence[Any], dict[str, Any]]


def publish_group(
    app: Celery, calls: Sequence[BatchCall], options: dict[str, Any], group_id: str | None = None
) -> GroupResult:
    """Publish ``calls`` as one group and return its result (members in order)."""
    group_id = group_id or str(uuid.uuid4())
    amqp: Any = app.amqp
    router: Any = amqp.router
    send_sent_event = bool(app.conf.task_send_sent_event)
    countdown = options.get("countdown")
    eta = options.get("eta")
    routing = {key: options[key] for key in ("priority", "queue") if key in options}
    reply_to = app.thread_oid
    results: list[AsyncResult[Any]] = []
    with (
        translate_publish_errors(app),
        app.producer_or_acquire() as producer,
        producer.batch(max_size=BATCH_SIZE),
    ):
        for index, (name, args, kwargs) in enumerate(calls):
            task_id = str(uuid.uuid4())
            message = amqp.create_task_message(
                task_id,
                name,
                args,
                kwargs,
                countdown,
                eta,
                group_id,
                index,
                reply_to=reply_to,
                create_sent_event=send_sent_event,
            )
            route = router.route(dict(routing), name, args, kwargs, None)
            amqp.send_task_message(producer, name, message, **route)
            results.append(app.AsyncResult(task_id))
    return app.GroupResult(group_id, results)
