"""Monitoring against real Redis and real prefork workers: counts, runtimes, the exporter,
process kills, and the health probes."""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from prometheus_client.parser import text_string_to_metric_families

from crawjud_tasks import Settings, create_app
from crawjud_tasks._app import close_app
from crawjud_tasks._redis_server import RedisServer
from crawjud_tasks._state import app_state
from crawjud_tasks._worker_process import WorkerProcess
from crawjud_tasks.monitoring import (
    active_tasks,
    metrics_asgi_app,
    render_metrics,
    stats,
    task_status,
    worker_health,
)
from crawjud_tasks.monitoring._collect import metrics_state
from crawjud_tasks.testing import settings_for
from tests.examples import monitoring as m
from tests.helpers import ROOT, run_cli

pytestmark = pytest.mark.slow

INTERVAL = 0.5


@pytest.fixture
def mon_settings(crawjud_redis: RedisServer, tmp_path: Path) -> Settings:
    return settings_for(
        crawjud_redis,
        tmp_path,
        monitoring={
            "metrics_flush_interval": INTERVAL,
            "health_interval": INTERVAL,
            "health_timeout": 5.0,
            "stall_timeout": 2.0,
        },
    )


@pytest.fixture
def host(mon_settings: Settings) -> Iterator[Celery]:
    app = create_app(mon_settings)
    yield app
    close_app(app)


@pytest.fixture
def start_worker(
    host: Celery, mon_settings: Settings, crawjud_redis: RedisServer
) -> Iterator[Callable[..., WorkerProcess]]:
    workers: list[WorkerProcess] = []

    def start(extra_env: dict[str, str] | None = None, **options: Any) -> WorkerProcess:
        env = {
            **(extra_env or {}),
            **mon_settings.to_env(),
            "EXAMPLES_REDIS_URL": crawjud_redis.url_for(2),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        }
        options.setdefault("pool", "prefork")
        options.setdefault("concurrency", 2)
        worker = WorkerProcess(host, app_spec="tests.examples.monitoring:app", env=env, **options)
        workers.append(worker)
        return worker.start()

    yield start
    for worker in workers:
        worker.stop()
        worker.log_path.unlink(missing_ok=True)


def _samples(app: Celery) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = render_metrics(app).decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _value(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], metric: str, /, **labels: str
) -> float:
    return sum(
        value
        for (sample, sample_labels), value in samples.items()
        if sample == metric and set(labels.items()) <= sample_labels
    )


def _wait_for(check: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail("condition not met in time")
        time.sleep(0.1)


def test_counts_and_runtimes_across_two_prefork_workers(
    host: Celery, start_worker: Callable[..., WorkerProcess]
) -> None:
    first, second = start_worker(), start_worker()
    handles = [m.work.using(host).delay(0.05) for _ in range(8)]
    failures = [m.fail.using(host).delay("value") for _ in range(3)]
    failures += [m.fail.using(host).delay("key") for _ in range(2)]
    flaky = [m.flaky.using(host).delay(f"k{i}") for i in range(2)]
    refused = m.refuse.using(host).delay()
    for handle in handles + flaky:
        handle.get(timeout=30)
    for handle in failures:
        with pytest.raises(Exception):  # noqa: B017, PT011  (the task's own error, rebuilt)
            handle.get(timeout=30)
    work, fail = m.work.full_name(host), m.fail.full_name(host)

    def counted() -> bool:
        samples = _samples(host)
        return (
            _value(samples, "celery_task_succeeded_total", name=work) == 8
            and _value(samples, "celery_task_failed_total", name=fail) == 5
            and _value(samples, "celery_task_retried_total", name=m.flaky.full_name(host)) == 2
            and _value(samples, "celery_task_rejected_total", name=m.refuse.full_name(host)) == 1
            # Each process flushes on its own clock: the publisher (this test), the workers'
            # main processes (received) and their pool processes (runtimes) each within one
            # interval of the others.
            and _value(samples, "celery_task_sent_total", name=work) == 8
            and _value(samples, "celery_task_received_total", name=work) == 8
            and _value(samples, "celery_task_runtime_count", name=work) == 8
            and _value(samples, "celery_task_queue_wait_time_count", name=work) == 8
        )

    _wait_for(counted)
    samples = _samples(host)
    assert _value(samples, "celery_task_failed_total", name=fail, exception="ValueError") == 3
    assert _value(samples, "celery_task_failed_total", name=fail, exception="KeyError") == 2
    assert _value(samples, "celery_task_runtime_sum", name=work) >= 8 * 0.05
    assert _value(samples, "celery_task_runtime_bucket", name=work, le="0.025") == 0
    assert _value(samples, "celery_worker_up", hostname=first.nodename) == 1
    assert _value(samples, "celery_worker_up", hostname=second.nodename) == 1
    assert _value(samples, "crawjud_up") == 1
    # Every pool process of both workers flushes its own record (each on its own clock).
    _wait_for(
        lambda: (
            {w.node for w in stats(host, window=120).workers} == {first.nodename, second.nodename}
        )
    )
    _wait_for(lambda: all(w.processes == 3 for w in stats(host, window=120).workers))
    figures = stats(host, window=120)
    assert all(w.concurrency == 2 for w in figures.workers)
    row = next(t for t in figures.tasks if t.name == work)
    assert (row.succeeded, row.failed) == (8, 0)
    assert row.mean_runtime is not None and 0.05 <= row.mean_runtime < 1.0
    # Sleeps overshoot on a loaded machine: one slow task moves the p95 up a bucket.
    assert row.p95_runtime is not None and 0.05 <= row.p95_runtime < 1.0
    status = task_status(host, handles[0].id, contract=m.work)
    assert (status.state, status.result) == ("SUCCESS", 0.05)
    assert task_status(host, "no-such-task").state == "unknown"
    assert task_status(host, failures[0].id).error_type == "ValueError"
    assert refused.id
    env = mon_settings_env(host)
    shown = run_cli("tasks", "show", failures[0].id, "--json", env=env)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["error_type"] == "ValueError"
    table = run_cli("stats", "--window", "2m", env=env)
    assert table.returncode == 0, table.stderr
    assert work in table.stdout
    bad = run_cli("stats", "--window", "soon", env=env)
    assert bad.returncode == 2
    assert "--window takes a duration" in bad.stderr
    probe = run_cli("health", "worker", "--ready", env=env)
    assert (probe.returncode, probe.stdout.strip()) == (0, "ok"), probe.stderr


def test_a_host_plain_task_is_counted_beside_the_contracts(
    host: Celery, start_worker: Callable[..., WorkerProcess]
) -> None:
    # Contracts alone are counted through the task class hooks; a worker that also runs a
    # host's plain task counts every run through Celery's signals instead: both are counted.
    start_worker({"EXAMPLES_PLAIN_TASK": "1"}, concurrency=1)
    plain = host.send_task("mon.plain")
    assert plain.get(timeout=30) == 1
    m.work.using(host).delay(0.01).get(timeout=30)
    work = m.work.full_name(host)

    def counted() -> bool:
        samples = _samples(host)
        return all(
            _value(samples, f"celery_task_{event}_total", name=name) == 1
            for event in ("started", "succeeded")
            for name in ("mon.plain", work)
        )

    _wait_for(counted)
    samples = _samples(host)
    assert _value(samples, "celery_task_runtime_count", name="mon.plain") == 1
    assert _value(samples, "celery_task_runtime_count", name=work) == 1


def mon_settings_env(app: Celery) -> dict[str, str]:
    from crawjud_tasks import app_settings

    return app_settings(app).to_env()


def test_a_killed_pool_process_loses_at_most_one_interval(
    host: Celery, start_worker: Callable[..., WorkerProcess]
) -> None:
    worker = start_worker()
    for handle in [m.work.using(host).delay(0.0) for _ in range(10)]:
        handle.get(timeout=30)
    time.sleep(2 * INTERVAL + 0.2)  # every count is one interval old
    children = [
        int(pid)
        for pid in Path(f"/proc/{worker.pid}/task/{worker.pid}/children").read_text().split()
    ]
    for pid in children:
        os.kill(pid, signal.SIGKILL)
    name = m.work.full_name(host)
    assert _value(_samples(host), "celery_task_succeeded_total", name=name) == 10
    # The worker replaces its pool processes, and they count too.
    for handle in [m.work.using(host).delay(0.0) for _ in range(4)]:
        handle.get(timeout=30)
    _wait_for(lambda: _value(_samples(host), "celery_task_succeeded_total", name=name) == 14)


def test_probes_follow_redis_and_the_exporter_answers_503(
    host: Celery,
    mon_settings: Settings,
    crawjud_redis: RedisServer,
    start_worker: Callable[..., WorkerProcess],
) -> None:
    start_worker(pool="solo", concurrency=1)
    directory = mon_settings.resolved_data_dir / "health"
    _wait_for(lambda: worker_health(directory, check="ready").ok)
    crawjud_redis.stop(keep_files=True)
    try:
        _wait_for(lambda: not worker_health(directory, check="ready").ok)
        assert worker_health(directory, check="live").ok, worker_health(directory, check="live")
        from crawjud_tasks.monitoring import metrics_wsgi_app

        answers: list[str] = []
        body = metrics_wsgi_app(host)({}, lambda status, headers: answers.append(status))
        assert answers[0].startswith("503")
        assert body[0].endswith(b"\ncrawjud_up 0\n")
    finally:
        crawjud_redis.start()
    _wait_for(lambda: worker_health(directory, check="ready").ok, timeout=30)


def test_a_consumer_that_stops_fetching_is_not_live(
    host: Celery, mon_settings: Settings, start_worker: Callable[..., WorkerProcess]
) -> None:
    worker = start_worker()
    directory = mon_settings.resolved_data_dir / "health"
    _wait_for(lambda: worker_health(directory, check="live").ok)
    queue = mon_settings.queue_names["default"]
    host.control.cancel_consumer(queue, destination=[worker.nodename], reply=True, timeout=5)
    for _ in range(3):
        m.work.using(host).delay(0.0)
    _wait_for(lambda: not worker_health(directory, check="live").ok, timeout=20)
    report = worker_health(directory, check="live")
    assert any("stalled" in reason for reason in report.reasons), report


def _asgi(app: Celery, scope: dict[str, Any]) -> list[dict[str, Any]]:
    """Call the metrics ASGI app once, as an ASGI server would; the messages it sent."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(metrics_asgi_app(app)(scope, receive, send))
    return sent


def test_the_asgi_app_answers_scrapes_gzipped_on_request_and_503_without_redis(
    host: Celery, crawjud_redis: RedisServer
) -> None:
    scope = {"type": "http", "method": "GET", "path": "/metrics", "headers": []}
    name = m.work.full_name(host)

    def sent() -> float:
        start, body = _asgi(host, scope)
        assert (start["status"], dict(start["headers"])[b"content-type"]) == (
            200,
            b"text/plain; version=0.0.4; charset=utf-8",
        )
        families = {f.name: f for f in text_string_to_metric_families(body["body"].decode())}
        samples = families["celery_task_sent"].samples
        return sum(s.value for s in samples if s.labels["name"] == name)

    before = sent()
    m.work.using(host).delay(0.0)  # this process counts it as sent; the flush writes it
    state = metrics_state(host)
    assert state is not None and state.flush()
    assert sent() == before + 1
    gzipped = {**scope, "headers": [(b"accept-encoding", b"gzip, deflate")]}
    start, body = _asgi(host, gzipped)
    assert dict(start["headers"])[b"content-encoding"] == b"gzip"
    assert b"\ncrawjud_up 1\n" in gzip.decompress(body["body"])
    assert _asgi(host, {"type": "lifespan"}) == []  # not HTTP: left alone
    crawjud_redis.stop(keep_files=True)
    try:
        start, body = _asgi(host, scope)
        assert (start["status"], body["body"].endswith(b"crawjud_up 0\n")) == (503, True)
    finally:
        crawjud_redis.start()


def test_running_and_revoked_tasks_show_in_status_active_and_top(
    host: Celery, start_worker: Callable[..., WorkerProcess]
) -> None:
    worker = start_worker(pool="solo", concurrency=1)
    env = mon_settings_env(host)
    before = time.time()
    long = m.work.using(host).delay(3.0)
    _wait_for(lambda: any(task.id == long.id for task in active_tasks(host)))
    status = task_status(host, long.id)
    assert (status.state, status.name, status.worker) == (
        "STARTED",
        m.work.full_name(host),
        worker.nodename,
    )
    assert status.sent is not None and before - 1 <= status.sent.timestamp() <= time.time()
    listed = run_cli("tasks", "active", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    (row,) = json.loads(listed.stdout)
    assert (row["id"], row["worker"]) == (long.id, worker.nodename)
    frame = run_cli("top", "--once", "--window", "1m", env=env)
    assert frame.returncode == 0, frame.stderr
    assert worker.nodename in frame.stdout and "\x1b[" not in frame.stdout  # no screen clearing
    revoked = m.work.using(host).s(0.0).apply_async(countdown=1.0)
    host.control.revoke(revoked.id)
    long.get(timeout=30)
    name = m.work.full_name(host)
    _wait_for(lambda: _value(_samples(host), "celery_task_revoked_total", name=name) == 1)


def test_health_beat_follows_the_heartbeat_key(host: Celery) -> None:
    env = mon_settings_env(host)
    missing = run_cli("health", "beat", env=env)
    assert (missing.returncode, missing.stderr.strip()) == (
        1,
        "no beat heartbeat: beat is not running, or hung",
    )
    state = app_state(host)
    heartbeat = json.dumps({"time": time.time(), "pid": os.getpid()})
    state.redis.set(state.keys.beat_heartbeat(), heartbeat, ex=5)
    fresh = run_cli("health", "beat", env=env)
    assert (fresh.returncode, fresh.stdout.strip()) == (0, "ok"), fresh.stderr


def test_bot_items_are_exported_per_bot(host: Celery) -> None:
    state = metrics_state(host)
    assert state is not None
    state.recorder.bot_run("cnj.validar", 10, 3)
    state.recorder.bot_run("cnj.validar", 5, 0)
    assert state.flush()
    samples = _samples(host)
    assert _value(samples, "crawjud_bot_items_processed_total", bot="cnj.validar") >= 15
    assert _value(samples, "crawjud_bot_items_failed_total", bot="cnj.validar") >= 3
