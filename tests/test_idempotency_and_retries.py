"""Idempotency keys and broker retries, against a real worker process on a real Redis."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
import redis
from celery import Celery

from crawjud_tasks import PermanentError, TransientError
from crawjud_tasks.errors import DispatchError
from crawjud_tasks.testing import RedisServer, WorkerProcess
from tests.examples import contracts as c
from tests.helpers import entries


def test_same_key_dispatched_concurrently_runs_once(
    host: Celery, worker: WorkerProcess, log: redis.Redis
) -> None:
    sig = c.effect.using(host).s("once")
    handles: list[str] = []

    def dispatch() -> None:
        handles.append(sig.apply_async(idempotency_key="invoice-42").id)

    threads = [threading.Thread(target=dispatch) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(handles)) == 1  # every dispatch got the first task's id
    first = c.effect.using(host).result(handles[0])
    assert first.get(timeout=20) == "once"
    # Again after completion, within the key's TTL: the same handle, nothing sent.
    again = sig.apply_async(idempotency_key="invoice-42")
    assert again.id == handles[0]
    assert again.get(timeout=20) == "once"
    assert c.add.using(host).delay(1, 1).get(timeout=20) == 2  # the worker drained its queue
    assert [e for e in entries(log) if e.startswith("once:start")] != []
    assert len([e for e in entries(log) if e.startswith("once:start")]) == 1


def test_a_redelivered_message_whose_key_completed_is_not_run_again(
    host: Celery, worker: WorkerProcess, log: redis.Redis
) -> None:
    first = c.effect.using(host).s("dup").apply_async(idempotency_key="mail-7")
    assert first.get(timeout=20) == "dup"
    # The same message again, as a redelivery would bring it: same id, same key header.
    raw = host.send_task(
        "ex.examples.effect",
        args=["dup"],
        task_id=first.id,
        headers={"crawjud_idempotency_key": "mail-7"},
    )
    assert raw.get(timeout=20, disable_sync_subtasks=False) == "dup"
    assert len([e for e in entries(log) if e.startswith("dup:start")]) == 1


def test_different_keys_run_separately(
    host: Celery, worker: WorkerProcess, log: redis.Redis
) -> None:
    a = c.effect.using(host).s("k").apply_async(idempotency_key="a")
    b = c.effect.using(host).s("k").apply_async(idempotency_key="b")
    assert a.id != b.id
    assert [a.get(timeout=20), b.get(timeout=20)] == ["k", "k"]
    assert len([e for e in entries(log) if e.startswith("k:start")]) == 2


def test_idempotency_keys_live_under_the_namespace_with_a_ttl(
    host: Celery, worker: WorkerProcess, crawjud_redis_server: RedisServer
) -> None:
    result = c.effect.using(host).s("ttl").apply_async(idempotency_key="ttl-key")
    result.get(timeout=20)
    backend = crawjud_redis_server.client(1)
    try:
        key = "ex:idempotency:ex.examples.effect:ttl-key"
        assert backend.get(key) == result.id.encode()
        assert 0 < backend.ttl(key) <= 86400
        assert 0 < backend.ttl(f"{key}:result") <= 86400
    finally:
        backend.close()


def test_idempotency_key_is_checked(host: Celery) -> None:
    with pytest.raises(DispatchError, match="idempotency_key must be a non-empty string"):
        c.add.using(host).s(1, 2).apply_async(idempotency_key="")
    with pytest.raises(DispatchError, match="applies to one task, not to a workflow"):
        (c.add.using(host).s(1, 2) | c.add.using(host).s()).apply_async(idempotency_key="x")


def test_broker_retries_follow_the_policy_schedule(
    host: Celery, worker: WorkerProcess, log: redis.Redis
) -> None:
    # The worker's policy: 4 attempts, waits 0.25, 0.375, 0.5625 s (x1.5, no jitter).
    assert c.flaky.using(host).delay("sched", 2).get(timeout=30) == 3
    attempts = [e.split(":", 3) for e in entries(log) if e.startswith("sched:")]
    assert [int(a[1]) for a in attempts] == [1, 2, 3]
    # Each retry was sent with the policy's countdown, fractional part kept: its ETA lies that
    # far after the failed attempt started (plus the few ms the failure took to report).
    for (_, _, started, _), (_, _, _, eta), expected in zip(
        attempts, attempts[1:], (0.25, 0.375), strict=False
    ):
        countdown = dt.datetime.fromisoformat(eta).timestamp() - float(started)
        assert expected <= countdown < expected + 0.2, (expected, countdown)
    log_text = worker.output()
    assert "attempt 1 of 4 failed with TransientError; retrying in 0.25 s" in log_text
    assert "attempt 2 of 4 failed with TransientError; retrying in 0.38 s" in log_text


def test_retries_stop_when_the_attempts_are_used_up(
    host: Celery, worker: WorkerProcess, log: redis.Redis
) -> None:
    with pytest.raises(TransientError, match=r"court site busy \(4\)"):
        c.flaky.using(host).delay("exhausted", 10).get(timeout=30)
    assert len([e for e in entries(log) if e.startswith("exhausted:")]) == 4


def test_a_permanent_error_is_not_retried(
    host: Celery, worker: WorkerProcess, log: redis.Redis
) -> None:
    with pytest.raises(PermanentError, match="the court refused this filing"):
        c.refused.using(host).delay("perm").get(timeout=20)
    assert entries(log) == ["perm"]
