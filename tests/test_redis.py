"""The library's own Redis client: which Redis it uses, error translation, closing."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import redis
from celery import Celery

from crawjud_tasks import BrokerUnavailableError, CrawjudTasksError, Settings
from crawjud_tasks._redis import redis_py_url
from crawjud_tasks._redis_server import free_port
from crawjud_tasks._state import app_state
from crawjud_tasks.testing import RedisServer, close_app, settings_for

MakeApp = Callable[..., Celery]


def test_the_client_writes_to_the_result_backend_database(
    crawjud_app: Celery, crawjud_redis: RedisServer
) -> None:
    client = app_state(crawjud_app).redis
    assert app_state(crawjud_app).redis is client  # one per app
    client.set("crawjud:probe", "1")
    backend, broker = crawjud_redis.client(1), crawjud_redis.client(0)
    try:
        assert backend.get("crawjud:probe") == b"1"  # bytes: decode_responses is off
        assert broker.exists("crawjud:probe") == 0
    finally:
        backend.close()
        broker.close()


def test_the_broker_serves_when_the_result_backend_is_not_redis(
    crawjud_redis: RedisServer, crawjud_data_dir: Path, make_app: MakeApp
) -> None:
    app = make_app(settings_for(crawjud_redis, crawjud_data_dir, result_backend="rpc://"))
    app_state(app).redis.set("crawjud:probe", "1")
    broker = crawjud_redis.client(0)
    try:
        assert broker.get("crawjud:probe") == b"1"
    finally:
        broker.close()


def test_no_redis_at_all_is_refused_with_the_urls_redacted(make_app: MakeApp) -> None:
    app = make_app({"broker_url": "amqp://guest:hunter2@localhost//", "result_backend": "rpc://"})
    with pytest.raises(CrawjudTasksError, match="point result_backend at a Redis") as info:
        _ = app_state(app).redis
    assert "hunter2" not in str(info.value)
    assert "amqp://guest:***@localhost//" in str(info.value)


def test_each_app_has_its_own_client_and_close_app_closes_it(
    crawjud_settings: Settings, make_app: MakeApp
) -> None:
    first, second = make_app(crawjud_settings), make_app(crawjud_settings)
    client = app_state(first).redis
    assert app_state(second).redis is not client
    close_app(first)
    assert app_state(first).redis is not client


def test_kombu_socket_urls_become_redis_py_unix_urls() -> None:
    assert redis_py_url("redis+socket:///run/r.sock?virtual_host=3") == "unix:///run/r.sock?db=3"
    assert redis_py_url("socket:///run/r.sock") == "unix:///run/r.sock?db=0"
    assert redis_py_url("rediss://h:6380/2?ssl_cert_reqs=required") == (
        "rediss://h:6380/2?ssl_cert_reqs=required"
    )


def test_connection_errors_become_broker_unavailable_without_the_password(
    make_app: MakeApp,
) -> None:
    url = f"redis://:hunter2@127.0.0.1:{free_port()}/0"
    app = make_app({"broker_url": url, "broker_connection_timeout": 1.0})
    with pytest.raises(BrokerUnavailableError) as info, app_state(app).redis_errors():
        app_state(app).redis.ping()
    message = str(info.value)
    assert "hunter2" not in message
    assert "redis://:***@127.0.0.1" in message
    assert "broker_connection_timeout" in message
    assert isinstance(info.value.__cause__, redis.ConnectionError)
