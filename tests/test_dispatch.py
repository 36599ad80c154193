"""Dispatch-time checks: what a host gets wrong is refused before anything is sent."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from celery import Celery

from crawjud_tasks import Settings, chord, create_app, group, map_chunks, pipeline
from crawjud_tasks.errors import (
    ContractError,
    DispatchError,
    PayloadError,
    VisibilityTimeoutError,
)
from crawjud_tasks.testing import RedisServer, close_app, settings_for
from tests.examples import contracts as c

QueueLength = Callable[..., int]


@pytest.fixture
def queue_length(crawjud_redis: RedisServer) -> QueueLength:
    def length(name: str = "crawjud") -> int:
        client = crawjud_redis.client()
        try:
            return int(client.llen(name))  # type: ignore[arg-type]  # redis-py types llen as sync-or-async
        finally:
            client.close()

    return length


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        (
            lambda add: add.delay(),
            r"examples\.add: missing a required argument: 'a' \(the contract takes \(a, b=0\)\)",
        ),
        (lambda add: add.delay(1, 2, 3), "too many positional arguments"),
        (lambda add: add.delay(1, c=3), "got an unexpected keyword argument 'c'"),
        (lambda add: add.si(b=2), "missing a required argument: 'a'"),
        (lambda add: add.s(1, 2, 3), "too many positional arguments"),
    ],
)
def test_arguments_that_do_not_fit_are_refused_at_dispatch(
    crawjud_app: Celery, queue_length: QueueLength, call: Callable[[Any], object], expected: str
) -> None:
    with pytest.raises(PayloadError, match=expected):
        call(c.add.using(crawjud_app))
    assert queue_length() == 0


def test_values_that_cannot_be_json_are_refused(crawjud_app: Celery) -> None:
    with pytest.raises(PayloadError, match="cannot send"):
        c.add.using(crawjud_app).delay(object())  # type: ignore[arg-type]  # deliberately wrong: checked at run time


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"countdown": -1}, r"countdown must be a number of seconds >= 0, got -1"),
        ({"countdown": "5"}, r"countdown must be a number of seconds >= 0, got '5'"),
        ({"priority": 10}, r"priority must be an integer from 0 to 9, got 10"),
        ({"priority": True}, r"priority must be an integer from 0 to 9, got True"),
        ({"queue": ""}, r"queue must be a non-empty string"),
        ({"eta": dt.datetime(2030, 1, 1)}, r"eta must be a timezone-aware datetime"),
        ({"expires": -3}, r"expires must be a number of seconds >= 0"),
        ({"time_limit": "long"}, r"time_limit must be a number of seconds"),
        ({"countdown": float("nan")}, r"countdown must be a number of seconds >= 0, got nan"),
    ],
)
def test_invalid_options_are_refused(
    crawjud_app: Celery, queue_length: QueueLength, options: dict[str, object], expected: str
) -> None:
    with pytest.raises(DispatchError, match=expected):
        c.add.using(crawjud_app).s(1, 2).apply_async(**options)  # type: ignore[arg-type]  # deliberately wrong options
    assert queue_length() == 0


def test_countdown_at_the_visibility_timeout_is_refused(
    crawjud_redis: RedisServer, crawjud_data_dir: Path, queue_length: QueueLength
) -> None:
    settings = settings_for(crawjud_redis, crawjud_data_dir, visibility_timeout=600)
    app = create_app(settings)
    try:
        sig = c.add.using(app).s(1, 2)
        with pytest.raises(
            VisibilityTimeoutError,
            match=r"the countdown of 600\.0 s reaches the broker's visibility timeout of 600\.0 s",
        ):
            sig.apply_async(countdown=600)
        later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)
        with pytest.raises(VisibilityTimeoutError, match=r"the eta of 3\d{3}\.\d s reaches"):
            sig.apply_async(eta=later)
        assert queue_length() == 0
        sig.apply_async(countdown=599.5).revoke()  # just below: sent
        assert queue_length() == 1
    finally:
        close_app(app)


def test_a_complete_signature_cannot_follow_another_step(crawjud_app: Celery) -> None:
    add = c.add.using(crawjud_app)
    with pytest.raises(ContractError, match="would receive the previous result"):
        add.s(1, 2) | add.s(3, 4)  # type: ignore[operator]  # deliberately wrong: the run-time check
    with pytest.raises(ContractError, match="would receive the previous result"):
        pipeline(add.s(1, 2), add.s(3, 4))  # type: ignore[call-overload]  # deliberately wrong


def test_builders_refuse_what_they_cannot_send(crawjud_app: Celery) -> None:
    add = c.add.using(crawjud_app)
    with pytest.raises(ContractError, match="mixes partial and complete"):
        group([add.s(1, 2), add.s(b=2)])  # type: ignore[list-item]  # deliberately wrong
    with pytest.raises(ContractError, match="chord body is a signature missing its first"):
        chord([add.s(1, 2)], add.s(1, 1))  # type: ignore[arg-type]  # deliberately wrong
    with pytest.raises(DispatchError, match="chunk size >= 1, got 0"):
        map_chunks(add.s(), [1, 2], 0)
    with pytest.raises(ContractError, match="one contract's signature missing its first argument"):
        map_chunks(add.s(b=1).then(add.s()), [1], 1)


def test_signatures_of_two_apps_do_not_mix(crawjud_app: Celery, crawjud_settings: Settings) -> None:
    other = create_app(crawjud_settings)
    try:
        with pytest.raises(ContractError, match="two different apps"):
            c.add.using(crawjud_app).s(1, 2) | c.add.using(other).s()
    finally:
        close_app(other)


def test_using_an_app_without_settings_is_explained() -> None:
    plain = Celery("plain", set_as_current=False)
    with pytest.raises(Exception, match=r"build it with create_app\(\)"):
        c.add.using(plain)


@pytest.mark.slow
def test_default_app_is_the_only_open_app(crawjud_redis: RedisServer) -> None:
    # In a fresh process: no app, then one app (used), then two (refused until one is closed).
    script = textwrap.dedent(
        f"""
        from crawjud_tasks import create_app
        from crawjud_tasks.errors import CrawjudTasksError
        from crawjud_tasks.testing import close_app
        from tests.examples.contracts import add

        config = {{"broker_url": "{crawjud_redis.url_for(0)}"}}
        try:
            add.s(1, 2).apply_async(queue="nobody")
        except CrawjudTasksError as exc:
            print("none:", exc)
        first = create_app(config)
        print("one:", add.s(1, 2).apply_async(queue="nobody").id != "")
        second = create_app(config)
        try:
            add.delay(1, 2)
        except CrawjudTasksError as exc:
            print("two:", exc)
        close_app(second)
        print("closed:", add.full_name())
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert "none: no crawjud-tasks app in this process: call create_app() or install() first" in out
    assert "one: True" in out
    assert "two: 2 crawjud-tasks apps are open in this process; say which one with" in out
    assert "closed: crawjud.examples.add" in out


def test_contract_names_are_checked() -> None:
    from crawjud_tasks import task_contract

    with pytest.raises(ContractError, match="dotted identifiers"):
        task_contract("bad name")
    with pytest.raises(ContractError, match=r"is taken by tests\.examples\.contracts\.add"):

        @task_contract("examples.add")
        def other(a: int) -> int:
            raise NotImplementedError


def test_implementing_twice_on_one_app_is_refused(crawjud_app: Celery) -> None:
    c.total.implement(crawjud_app)(sum)
    with pytest.raises(ContractError, match="already implemented on this app"):
        c.total.implement(crawjud_app)(sum)


def test_implementation_options_are_checked(crawjud_app: Celery) -> None:
    with pytest.raises(ContractError, match="time_limit must be a number of seconds >= 0, got -1"):
        c.total.implement(crawjud_app, time_limit=-1)(sum)
    with pytest.raises(ContractError, match="retry must be a RetryPolicy, got 3"):
        c.total.implement(crawjud_app, retry=3)(sum)  # type: ignore[arg-type]  # deliberately wrong
    assert "crawjud.examples.total" not in crawjud_app.tasks


def test_poison_messages_limit_is_checked(crawjud_app: Celery) -> None:
    from crawjud_tasks import poison_messages

    with pytest.raises(DispatchError, match="limit must be an integer >= 1, got 0"):
        poison_messages(crawjud_app, limit=0)
    assert poison_messages(crawjud_app) == []


def test_an_installed_app_keeps_its_own_redis_for_keys_and_visibility(
    crawjud_redis: RedisServer, make_app: Callable[..., Celery], queue_length: QueueLength
) -> None:
    # A host's own Celery app: no URLs in the crawjud settings, its own transport options.
    from crawjud_tasks import install

    host = make_app(
        plain=True,
        broker=crawjud_redis.url_for(0),
        backend=crawjud_redis.url_for(1),
        broker_transport_options={"visibility_timeout": 600},
    )
    host.conf.accept_content = ["json"]
    install(host)
    sig = c.add.using(host).s(1, 2)
    first = sig.apply_async(idempotency_key="installed")
    again = sig.apply_async(idempotency_key="installed")
    assert again.id == first.id
    assert queue_length() == 1
    with pytest.raises(VisibilityTimeoutError, match=r"visibility timeout of 600\.0 s"):
        sig.apply_async(countdown=600)
