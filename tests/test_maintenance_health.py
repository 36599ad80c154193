"""The health check against real parts: a worker, a real SMTP server, and dependencies that
are stopped or hang; the report always comes within its time limit."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from celery import Celery
from celery.worker import WorkController

from crawjud_tasks import Settings, create_app
from crawjud_tasks._app import close_app
from crawjud_tasks._state import app_state
from crawjud_tasks.maintenance import HealthReport, backup, contracts, health_check
from crawjud_tasks.testing import RedisServer, settings_for
from tests.smtp_server import Recorder

pytestmark = pytest.mark.slow


def by_name(report: HealthReport) -> dict[str, str]:
    return {check.name: check.status for check in report.checks}


@pytest.fixture
def hung_port() -> Iterator[int]:
    """A TCP port that accepts connections and never says a word."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    yield server.getsockname()[1]
    server.close()


@pytest.fixture
def smtp_settings(
    crawjud_redis: RedisServer, crawjud_data_dir: Path, smtp: tuple[Recorder, int]
) -> Settings:
    return settings_for(
        crawjud_redis,
        crawjud_data_dir,
        mail={"host": "127.0.0.1", "port": smtp[1], "security": "none"},
        maintenance={"alert_to": ["ops@example.org"], "alert_cooldown": 3600},
    )


@pytest.fixture
def crawjud_settings(smtp_settings: Settings) -> Settings:
    """The plugin's app and worker fixtures use these settings."""
    return smtp_settings


def test_healthy_parts_report_ok(
    crawjud_app: Celery, crawjud_worker: WorkController, crawjud_redis: RedisServer
) -> None:
    crawjud_redis.client(0).set("crawjud:redbeat::lock", "beat-1", ex=60)
    backup(crawjud_app)
    report = health_check(crawjud_app)
    statuses = by_name(report)
    assert statuses["consumers"] == "ok", report
    assert statuses["beat"] == "ok"
    assert statuses["smtp"] == "ok"
    assert statuses["backup"] == "ok"
    assert statuses["queues"] == "ok"
    assert statuses["disk"] in {"ok", "degraded"}  # the machine's disk, not ours
    # The contract, run by the worker, gives the same typed report back. (This solo worker is
    # busy running the check, so it cannot answer the consumers check itself.)
    remote = contracts.health_check.using(crawjud_app).delay().get(timeout=30)
    assert isinstance(remote, HealthReport)
    assert by_name(remote).keys() == statuses.keys()
    assert by_name(remote)["redis"] == statuses["redis"]


def test_worsening_sends_one_alert_then_cools_down(
    crawjud_app: Celery,
    crawjud_worker: WorkController,
    crawjud_redis: RedisServer,
    smtp: tuple[Recorder, int],
) -> None:
    recorder = smtp[0]
    status_key = app_state(crawjud_app).keys.health_status()
    library = crawjud_redis.client(1)
    library.set(status_key, "ok")
    first = health_check(crawjud_app)  # no beat leader, no backup: degraded
    assert first.status == "degraded"
    assert first.alerted
    deadline = time.monotonic() + 20
    while not recorder.messages and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(recorder.messages) == 1
    mail = recorder.parsed()[0]
    assert "is degraded" in str(mail["Subject"]) or "degraded" in mail.as_string()
    assert recorder.messages[0][0] == ["ops@example.org"]

    assert not health_check(crawjud_app).alerted  # same status: no alert
    library.set(status_key, "ok")
    assert not health_check(crawjud_app).alerted  # worse again, within the cool-down
    time.sleep(1)
    assert len(recorder.messages) == 1


def test_redis_stopped(crawjud_app: Celery, crawjud_redis_server: RedisServer) -> None:
    crawjud_redis_server.stop()
    started = time.monotonic()
    report = health_check(crawjud_app)
    assert time.monotonic() - started < 10
    assert report.status == "down"
    assert by_name(report)["redis"] == "down"
    assert not report.alerted


def test_smtp_stopped(crawjud_redis: RedisServer, crawjud_data_dir: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    app = create_app(
        settings_for(
            crawjud_redis,
            crawjud_data_dir,
            mail={"host": "127.0.0.1", "port": closed, "security": "none"},
        )
    )
    try:
        report = health_check(app)
    finally:
        close_app(app)
    smtp_check = next(check for check in report.checks if check.name == "smtp")
    assert smtp_check.status == "down"
    assert "Connection" in smtp_check.detail or "refused" in smtp_check.detail


def test_hung_endpoints_are_cut_at_their_limits(crawjud_data_dir: Path, hung_port: int) -> None:
    app = create_app(
        {
            "broker_url": f"redis://127.0.0.1:{hung_port}/0",
            "result_backend": f"redis://127.0.0.1:{hung_port}/1",
            "data_dir": str(crawjud_data_dir),
            "mail": {"host": "127.0.0.1", "port": hung_port, "security": "none"},
        }
    )
    try:
        started = time.monotonic()
        report = health_check(app)
        elapsed = time.monotonic() - started
    finally:
        close_app(app)
    assert elapsed < 10
    assert report.seconds < 10
    assert report.status == "down"
    statuses = by_name(report)
    assert statuses["redis"] == "down"
    assert statuses["smtp"] == "down"
    smtp_check = next(check for check in report.checks if check.name == "smtp")
    assert smtp_check.seconds <= 3.5


def test_eviction_policy_and_persistence_off_are_degraded(
    crawjud_app: Celery, crawjud_redis: RedisServer
) -> None:
    client = crawjud_redis.client()
    saved = client.config_get("*")
    try:
        client.config_set("maxmemory-policy", "allkeys-lru")
        client.config_set("save", "")
        client.config_set("appendonly", "no")
        check = next(c for c in health_check(crawjud_app).checks if c.name == "redis")
    finally:
        for name in ("maxmemory-policy", "save", "appendonly"):
            client.config_set(name, saved[name])
        client.close()
    assert check.status == "degraded"
    assert "maxmemory-policy is allkeys-lru (must be noeviction)" in check.detail
    assert "persistence is off" in check.detail


def test_an_app_without_a_redis_gets_a_report_not_an_error(crawjud_data_dir: Path) -> None:
    app = create_app(
        {
            "broker_url": "amqp://guest@127.0.0.1:1//",
            "result_backend": "rpc://",
            "data_dir": str(crawjud_data_dir),
        }
    )
    try:
        report = health_check(app)
    finally:
        close_app(app)
    assert report.status == "down"
    assert by_name(report)["redis"] == "down"
    assert report.seconds < 10
