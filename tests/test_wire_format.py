"""JSON only on the wire: a pickled message is refused by the worker, which keeps working."""

from __future__ import annotations

from celery import Celery
from celery.worker import WorkController

from crawjud_tasks import ping
from crawjud_tasks.testing import RedisServer, wait_for


def test_a_pickled_message_is_dropped_and_the_worker_goes_on(
    crawjud_app: Celery, crawjud_worker: WorkController, crawjud_redis: RedisServer
) -> None:
    sent = crawjud_app.send_task("crawjud.ping", serializer="pickle")
    pickled_id = sent.id
    del sent
    # The worker keeps consuming: a JSON ping sent after the pickled one is answered...
    assert ping(crawjud_app, timeout=20).version
    client = crawjud_redis.client()
    try:
        wait_for(lambda: client.llen("crawjud") == 0, timeout=5)
        # ...the pickled message is gone from the queue rather than redelivered in a loop...
        assert client.llen("crawjud") == 0
        assert client.hlen("crawjud:unacked") == 0
    finally:
        client.close()
    # ...and it never ran: no result (not even a failure) was stored for it.
    results = crawjud_redis.client(1)
    try:
        assert results.exists(f"crawjud:celery-task-meta-{pickled_id}") == 0
    finally:
        results.close()


def test_tasks_and_results_travel_as_json(crawjud_app: Celery, crawjud_redis: RedisServer) -> None:
    import json

    crawjud_app.tasks["crawjud.ping"].apply_async(ignore_result=True)
    client = crawjud_redis.client()
    try:
        raw = client.lindex("crawjud", 0)
    finally:
        client.close()
    assert raw is not None
    envelope = json.loads(raw)
    assert envelope["content-type"] == "application/json"
    assert envelope["headers"]["task"] == "crawjud.ping"
