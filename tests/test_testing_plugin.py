"""The public pytest plugin, used the way a host application's test suite uses it."""

from __future__ import annotations

import textwrap
from collections.abc import Callable

import pytest
from celery import Celery

from crawjud_tasks import ping
from crawjud_tasks.testing import RedisServer, WorkerProcess

pytest_plugins = ["pytester"]


def test_a_host_suite_gets_the_fixtures_with_no_import(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_host=textwrap.dedent(
            """
            from crawjud_tasks import ping

            def test_ping_in_thread(crawjud_app, crawjud_worker):
                assert ping(crawjud_app, timeout=20).version

            def test_settings_point_at_the_test_server(crawjud_settings, crawjud_redis):
                assert crawjud_settings.broker_url == crawjud_redis.url_for(0)
                assert crawjud_redis.client().ping()
            """
        )
    )
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-W", "ignore::DeprecationWarning"
    )
    result.assert_outcomes(passed=2)


def test_worker_process_can_be_killed_and_replaced(
    crawjud_app: Celery, crawjud_worker_process: Callable[..., WorkerProcess]
) -> None:
    first = crawjud_worker_process(pool="prefork", concurrency=2)
    assert ping(crawjud_app, timeout=20).hostname == first.nodename
    first.kill()
    assert not first.running
    second = crawjud_worker_process()
    assert ping(crawjud_app, timeout=20).hostname == second.nodename
    assert second.stop() == 0


def test_redis_server_restart_keeps_data() -> None:
    with RedisServer() as server:
        client = server.client()
        client.set("kept", "yes")
        client.close()
        server.restart()
        client = server.client()
        assert client.get("kept") == b"yes"
        client.close()
    assert not server.running
    assert not server.directory.exists()


def test_crawjud_redis_is_emptied_between_tests(crawjud_redis: RedisServer) -> None:
    client = crawjud_redis.client()
    try:
        assert client.dbsize() == 0
        client.set("left-behind", 1)
    finally:
        client.close()


def test_crawjud_redis_is_emptied_between_tests_again(crawjud_redis: RedisServer) -> None:
    client = crawjud_redis.client()
    try:
        assert client.get("left-behind") is None
    finally:
        client.close()
