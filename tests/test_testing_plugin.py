"""The public pytest plugin, used the way a host application's test suite uses it."""

from __future__ import annotations

import textwrap
import threading
import time
from collections.abc import Callable

import pytest
from celery import Celery

from crawjud_tasks import ping
from crawjud_tasks.testing import RedisServer, WorkerProcess, wait_for

pytest_plugins = ["pytester"]


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
def test_a_host_tests_its_bot_with_the_plugin_fixtures(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_bot=textwrap.dedent(
            """
            from crawjud_tasks import ItemError
            from crawjud_tasks.bots import BaseBot, Item, ItemOutcome, RunContext, register_bot
            from crawjud_tasks.bots.contracts import (
                BotInput, BotParameters, RunStatus, execute_bot,
            )


            class Upper(BaseBot[None]):
                required_columns = ("NOME",)

                def process(self, item: Item, ctx: RunContext[None]) -> ItemOutcome:
                    if str(item["NOME"]).startswith("x"):
                        raise ItemError("not a name")
                    return ItemOutcome.success({"UPPER": str(item["NOME"]).upper()})


            def test_the_bot_runs_through_a_real_worker(crawjud_app, crawjud_worker):
                register_bot(crawjud_app, "host.upper", Upper)
                parameters = BotParameters(
                    input=BotInput.inline([{"nome": "ana"}, {"nome": "xyz"}, {"nome": "bia"}])
                )
                result = execute_bot.using(crawjud_app).delay(
                    "host.upper", 1, parameters
                ).get(timeout=30)
                assert result.status is RunStatus.COMPLETED_WITH_ERRORS
                assert (result.counts.succeeded, result.counts.failed) == (2, 1)
                assert result.error_sample == ["row 3: not a name"]
            """
        )
    )
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-W", "ignore::DeprecationWarning"
    )
    result.assert_outcomes(passed=1)


def test_wait_for_returns_the_first_truthy_value_once_another_thread_delivers_it() -> None:
    box: list[str] = []
    threading.Timer(0.2, box.append, ["done"]).start()
    started = time.monotonic()
    assert wait_for(lambda: box and box[0], timeout=10) == "done"
    assert time.monotonic() - started < 5  # it ends when the condition holds, not at the timeout


def test_wait_for_fails_the_test_naming_what_it_waited_for() -> None:
    calls: list[float] = []

    def never() -> bool:
        calls.append(time.monotonic())
        return False

    started = time.monotonic()
    with pytest.raises(pytest.fail.Exception, match=r"^gave up after 0.3 s waiting for the moon$"):
        wait_for(never, timeout=0.3, interval=0.05, what="the moon")
    assert calls[-1] - started >= 0.3  # the condition was asked once more after the deadline
    with pytest.raises(pytest.fail.Exception, match=r"waiting for .*never \(test_testing_plugin"):
        wait_for(never, timeout=0)
