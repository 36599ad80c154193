"""Checks at worker start, and a full Redis: real redis-servers and real worker processes."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from celery import Celery

from crawjud_tasks import (
    BrokerUnavailableError,
    CrawjudTasksError,
    RedisFullError,
    Settings,
    create_app,
)
from crawjud_tasks._state import app_state
from crawjud_tasks.testing import RedisServer, WorkerProcess, close_app, settings_for
from tests.examples import contracts as c

pytestmark = pytest.mark.slow


@pytest.fixture
def new_redis() -> Iterator[Callable[..., RedisServer]]:
    """A factory of redis-servers of the test's own (their settings are changed by the test)."""
    servers: list[RedisServer] = []

    def start(*, appendonly: bool = True) -> RedisServer:
        server = RedisServer(appendonly=appendonly).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def apps() -> Iterator[list[Celery]]:
    made: list[Celery] = []
    yield made
    for app in made:
        close_app(app)


def test_a_redis_that_would_lose_messages_is_reported_and_refused_when_strict(
    new_redis: Callable[..., RedisServer], tmp_path: Path, apps: list[Celery]
) -> None:
    server = new_redis(appendonly=False)  # and no snapshots: RedisServer saves none
    admin = server.client()
    admin.config_set("maxmemory-policy", "allkeys-lru")
    admin.close()
    settings = settings_for(server, tmp_path)
    app = create_app(settings)
    apps.append(app)

    worker = WorkerProcess(app, settings=settings, loglevel="INFO")
    try:
        worker.start()
        lines = worker.output().splitlines()
    finally:
        worker.stop()
        worker.log_path.unlink(missing_ok=True)
    persistence = [line for line in lines if "keeps nothing on disk" in line]
    eviction = [line for line in lines if "evicts keys when full" in line]
    # One line each (the broker and the backend are one server), with the command that fixes it.
    assert len(persistence) == 1, lines
    assert "redis-cli CONFIG SET appendonly yes" in persistence[0]
    assert len(eviction) == 1, lines
    assert "allkeys-lru" in eviction[0]
    assert "redis-cli CONFIG SET maxmemory-policy noeviction" in eviction[0]

    worker = WorkerProcess(app, settings=dataclasses.replace(settings, strict_redis=True))
    try:
        with pytest.raises(CrawjudTasksError, match="did not start") as info:
            worker.start(timeout=40)
    finally:
        worker.log_path.unlink(missing_ok=True)
    assert worker.stop() == 1
    assert "strict_redis is set" in str(info.value)


def test_refused_credentials_stop_the_worker_at_once(
    new_redis: Callable[..., RedisServer], tmp_path: Path, apps: list[Celery]
) -> None:
    server = new_redis()
    admin = server.client()
    admin.config_set("requirepass", "s3cret")
    admin.close()
    port = server.port
    good = Settings.from_mapping(
        {
            "broker_url": f"redis://:s3cret@127.0.0.1:{port}/0",
            "result_backend": f"redis://:s3cret@127.0.0.1:{port}/1",
            "data_dir": str(tmp_path),
        }
    )
    app = create_app(good)  # the test's own app, to ask for the worker's ping
    apps.append(app)
    for password, reply in (("wrong", "invalid username-password pair"), (None, "")):
        auth = f":{password}@" if password else ""
        bad = dataclasses.replace(
            good,
            broker_url=f"redis://{auth}127.0.0.1:{port}/0",
            result_backend=f"redis://{auth}127.0.0.1:{port}/1",
        )
        worker = WorkerProcess(app, settings=bad, loglevel="INFO")
        started = time.monotonic()
        try:
            with pytest.raises(CrawjudTasksError, match="did not start") as info:
                worker.start(timeout=40)
            elapsed = time.monotonic() - started
        finally:
            worker.log_path.unlink(missing_ok=True)
        # It exited by itself, at once, with status 1 and one line saying why.
        assert elapsed < 20, elapsed
        assert worker.stop() == 1
        message = str(info.value)
        assert "refused the credentials" in message
        assert reply in message
        assert ":wrong@" not in message


def test_a_full_redis_is_its_own_error_and_is_not_retried(
    new_redis: Callable[..., RedisServer], tmp_path: Path, apps: list[Celery]
) -> None:
    server = new_redis()
    app = create_app(settings_for(server, tmp_path, broker_connection_timeout=5.0))
    apps.append(app)
    admin = server.client()
    admin.config_set("maxmemory", 1)  # every write is refused: "OOM command not allowed"
    admin.close()
    state = app_state(app)

    def own_write() -> None:
        with state.redis_errors():
            state.redis.set(b"crawjud:probe", b"1")

    for dispatch in (
        lambda: app.send_task("host.anything"),
        lambda: c.add.using(app).delay(1),
        own_write,
    ):
        started = time.monotonic()
        with pytest.raises(RedisFullError) as info:
            dispatch()
        assert time.monotonic() - started < 1.0  # refused once, not retried
        assert not isinstance(info.value, BrokerUnavailableError | ConnectionError)
        assert "maxmemory" in str(info.value)
        assert "start it" not in str(info.value)
