"""Redis hygiene against a real Redis: TTLs given, orphans unlinked, the budget kept."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from celery import Celery

from crawjud_tasks import create_app
from crawjud_tasks._app import close_app
from crawjud_tasks._state import app_state
from crawjud_tasks.maintenance import redis_hygiene
from crawjud_tasks.maintenance._hygiene import hygiene_pass
from crawjud_tasks.testing import RedisServer, settings_for

pytestmark = pytest.mark.slow


@pytest.fixture
def app(crawjud_redis: RedisServer, tmp_path: Path) -> Iterator[Celery]:
    made = create_app(
        settings_for(
            crawjud_redis,
            tmp_path,
            idempotency_ttl=1,
            bots={"retention": 3600},
            maintenance={"hygiene_batch": 100},
        )
    )
    yield made
    close_app(made)


def test_keys_get_the_ttl_of_their_family_and_stale_ones_go(
    app: Celery, crawjud_redis: RedisServer
) -> None:
    library = crawjud_redis.client(1)
    library.set("crawjud:idempotency:t:stale", "x")  # no TTL, idle past its 1 s policy
    library.set("crawjud:run:r1:state", "s")  # no TTL: gets the retention
    library.set("crawjud:run:r2:state", "s", ex=86400)  # longer than the retention: shortened
    library.set("crawjud:redbeat:x", "kept")  # no policy: left alone
    library.set("other:key", "not ours")
    time.sleep(2.1)
    library.set("crawjud:idempotency:t:fresh", "x")  # no TTL, just written: gets one
    dry = redis_hygiene(app, dry_run=True)
    assert (dry.unlinked, dry.expired) == (1, 3)
    assert library.exists("crawjud:idempotency:t:stale") == 1
    assert library.ttl("crawjud:run:r1:state") == -1

    report = redis_hygiene(app)
    assert report.complete
    assert (report.unlinked, report.expired) == (1, 3)
    assert report.keys["run"] == 2
    assert report.memory["run"] > 0
    assert "other" not in report.keys
    assert library.exists("crawjud:idempotency:t:stale") == 0
    assert 0 < library.ttl("crawjud:idempotency:t:fresh") <= 1  # type: ignore[operator]
    assert 3590 < library.ttl("crawjud:run:r1:state") <= 3600  # type: ignore[operator]
    assert 3590 < library.ttl("crawjud:run:r2:state") <= 3600  # type: ignore[operator]
    assert library.ttl("crawjud:redbeat:x") == -1
    assert library.get("other:key") == b"not ours"


def test_orphaned_reply_queues_are_unlinked(app: Celery, crawjud_redis: RedisServer) -> None:
    broker = crawjud_redis.client(0)
    broker.rpush("0f6c.reply.crawjud.pidbox", "late answer")
    broker.rpush("crawjud.bots", "a queued message")  # a queue: never touched
    time.sleep(1.1)
    report = hygiene_pass(
        app_state(app).settings,
        app_state(app).redis,
        app_state(app).link.broker,
        cursor_keys=("crawjud:maintenance:hygiene:cursor", "crawjud:maintenance:hygiene:replies"),
        dry_run=False,
        reply_idle=1,
    )
    assert report.keys.get("replies") == 1
    assert broker.exists("0f6c.reply.crawjud.pidbox") == 0
    assert broker.llen("crawjud.bots") == 1


def test_a_pass_stopped_by_its_budget_goes_on_next_time(
    app: Celery, crawjud_redis: RedisServer
) -> None:
    library = crawjud_redis.client(1)
    pipe = library.pipeline(transaction=False)
    for index in range(20_000):
        pipe.set(f"crawjud:run:r{index}:state", "s")
    pipe.execute()
    first = redis_hygiene(app, budget=0.0)
    assert not first.complete
    assert library.exists(app_state(app).keys.hygiene_cursor("cursor")) == 1
    scanned = first.scanned
    for _ in range(1000):
        report = redis_hygiene(app, budget=0.0)
        scanned += report.scanned
        if report.complete:
            break
    assert report.complete
    assert scanned >= 20_000
    assert library.exists(app_state(app).keys.hygiene_cursor("cursor")) == 0
    missing = [k for k in library.scan_iter("crawjud:run:*") if library.ttl(k) == -1]
    assert missing == []
