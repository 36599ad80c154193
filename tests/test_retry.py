"""RetryPolicy: the schedule, the classification, inline retries and the testing switch."""

from __future__ import annotations

import dataclasses
import inspect
import logging
from collections.abc import Callable
from typing import Any

import pytest
from celery import Celery

from crawjud_tasks import (
    BrokerUnavailableError,
    CrawjudTasksError,
    PayloadError,
    PermanentError,
    RetryPolicy,
    Settings,
    SettingsError,
    TransientError,
    VisibilityTimeoutError,
)
from crawjud_tasks._retry import retry_waits_enabled
from crawjud_tasks._settings import DEFAULT_VISIBILITY_TIMEOUT
from crawjud_tasks.testing import WorkerProcess, retry_waits
from tests.helpers import run_python

RETRY_LOGGER = "crawjud_tasks.retry"


def _flaky(failures: list[BaseException], result: str = "done") -> Callable[[], str]:
    """A function that raises each of ``failures`` in turn, then returns ``result``."""
    calls = iter(failures)

    def call() -> str:
        failure = next(calls, None)
        if failure is not None:
            raise failure
        return result

    return call


def _retry_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name == RETRY_LOGGER]


@pytest.fixture(autouse=True)
def _retry_warnings(caplog: pytest.LogCaptureFixture) -> None:
    """Capture the retry logger's warnings, whatever level an earlier worker left the root at."""
    caplog.set_level(logging.WARNING, logger=RETRY_LOGGER)


# -- the schedule -------------------------------------------------------------------------------


def test_delays_grow_by_the_multiplier_up_to_max_wait_keeping_fractions() -> None:
    policy = RetryPolicy(attempts=6, initial_wait=0.25, multiplier=1.5, max_wait=0.6, jitter=0.0)
    assert policy.delays() == (0.25, 0.375, 0.5625, 0.6, 0.6)
    assert RetryPolicy().delays() == (1.0, 2.0, 4.0, 8.0)
    assert RetryPolicy.never().delays() == ()


def test_presets_schedules_and_their_longest_wait_stay_under_the_visibility_timeout() -> None:
    assert RetryPolicy.court_site().delays() == (2.0, 4.0, 8.0, 16.0)
    assert RetryPolicy.smtp().delays() == (5.0, 15.0, 45.0, 135.0, 300.0)
    assert RetryPolicy.never().attempts == 1
    assert RetryPolicy.never().max_delay == 0.0
    assert RetryPolicy.court_site().max_delay == 17.0
    assert RetryPolicy(attempts=50, max_wait=30.0, jitter=1.0).max_delay == 31.0
    for policy in (RetryPolicy(), RetryPolicy.court_site(), RetryPolicy.smtp()):
        policy.check_visibility(DEFAULT_VISIBILITY_TIMEOUT)
        assert policy.max_delay < DEFAULT_VISIBILITY_TIMEOUT / 10


def test_a_huge_number_of_attempts_caps_at_max_wait_without_overflow() -> None:
    policy = RetryPolicy(attempts=3000, initial_wait=1.0, multiplier=10.0, max_wait=5.0)
    assert policy.delays()[-1] == 5.0
    assert policy.next_delay(2000, 0.0, TransientError()) is not None


def test_jitter_adds_between_zero_and_jitter_seconds() -> None:
    policy = RetryPolicy(attempts=3, initial_wait=2.0, multiplier=2.0, max_wait=10.0, jitter=0.5)
    assert policy.max_delay == 4.5  # the last wait (4 s) and all of the jitter
    waits = [policy.next_delay(1, 0.0, TransientError()) for _ in range(300)]
    assert all(wait is not None and 4.0 <= wait <= 4.5 for wait in waits)
    assert len(set(waits)) > 1  # really random
    no_jitter = dataclasses.replace(policy, jitter=0.0)
    assert {no_jitter.next_delay(1, 0.0, TransientError()) for _ in range(20)} == {4.0}


def test_next_delay_gives_up_when_the_attempts_are_used_up() -> None:
    policy = RetryPolicy(attempts=3, initial_wait=0.5, multiplier=2.0, jitter=0.0)
    assert policy.next_delay(0, 0.0, TransientError()) == 0.5
    assert policy.next_delay(1, 0.0, TransientError()) == 1.0
    assert policy.next_delay(2, 0.0, TransientError()) is None
    assert RetryPolicy.never().next_delay(0, 0.0, TransientError()) is None


def test_the_timeout_cuts_the_schedule() -> None:
    policy = RetryPolicy(
        attempts=10, initial_wait=1.0, multiplier=2.0, max_wait=100.0, jitter=0.0, timeout=10.0
    )
    assert policy.next_delay(2, 3.0, TransientError()) == 4.0  # next attempt at 7 s
    assert policy.next_delay(3, 7.0, TransientError()) is None  # it would start at 15 s
    assert policy.next_delay(0, 9.5, TransientError()) is None  # at 10.5 s
    assert policy.next_delay(0, 8.5, TransientError()) == 1.0  # at 9.5 s


# -- the classification -------------------------------------------------------------------------


def test_transient_and_network_errors_are_retried_permanent_ones_never() -> None:
    policy = RetryPolicy()
    retried = [
        TransientError("x"),
        ConnectionRefusedError(),
        ConnectionResetError(),
        TimeoutError(),
        BrokerUnavailableError("x"),
    ]
    not_retried = [
        PermanentError("x"),
        PayloadError("x"),
        ValueError(),
        FileNotFoundError(),
        CrawjudTasksError(),
    ]
    assert [policy.should_retry(exc) for exc in retried] == [True] * len(retried)
    assert [policy.should_retry(exc) for exc in not_retried] == [False] * len(not_retried)
    assert policy.next_delay(0, 0.0, ValueError()) is None


def test_never_on_wins_over_retry_on() -> None:
    class NotThisOne(TransientError):
        pass

    everything = RetryPolicy(retry_on=Exception)
    assert everything.should_retry(ValueError())
    assert not everything.should_retry(PermanentError())
    assert not everything.should_retry(PayloadError())
    picky = RetryPolicy(retry_on=(TransientError, KeyError), never_on=NotThisOne)
    assert picky.should_retry(KeyError())
    assert not picky.should_retry(NotThisOne())
    assert picky.never_on == (NotThisOne,)  # a single class is kept as a tuple
    assert RetryPolicy(retry_on=KeyError) == RetryPolicy(retry_on=(KeyError,))


# -- validation ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"attempts": 0}, "RetryPolicy.attempts must be a whole number of at least 1, got 0"),
        ({"attempts": 2.5}, "RetryPolicy.attempts must be a whole number of at least 1"),
        ({"attempts": True}, "RetryPolicy.attempts must be a whole number of at least 1"),
        ({"initial_wait": -1}, "RetryPolicy.initial_wait must be a finite number of at least 0"),
        ({"jitter": float("nan")}, "RetryPolicy.jitter must be a finite number of at least 0"),
        ({"max_wait": float("inf")}, "RetryPolicy.max_wait must be a finite number"),
        ({"multiplier": 0.5}, "RetryPolicy.multiplier must be a finite number of at least 1"),
        ({"initial_wait": 5, "max_wait": 2}, r"max_wait \(2\) must be at least initial_wait \(5\)"),
        ({"timeout": 0}, "RetryPolicy.timeout must be more than 0, or None"),
        ({"timeout": "60"}, "RetryPolicy.timeout must be a finite number"),
        ({"retry_on": "TransientError"}, "RetryPolicy.retry_on must be an exception class or a"),
        ({"retry_on": KeyboardInterrupt}, "subclasses of Exception"),
        ({"never_on": (PermanentError, 3)}, "RetryPolicy.never_on must be an exception class"),
    ],
)
def test_invalid_fields_are_refused_in_one_line(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(SettingsError, match=message) as info:
        RetryPolicy(**changes)
    assert "\n" not in str(info.value)


def test_a_policy_is_a_frozen_hashable_value() -> None:
    policy = RetryPolicy.court_site()
    with pytest.raises(dataclasses.FrozenInstanceError):
        policy.attempts = 9  # type: ignore[misc]  # the point of the test
    assert hash(policy) == hash(RetryPolicy.court_site())
    with pytest.raises(TypeError):
        RetryPolicy(3)  # type: ignore[misc]  # keyword-only, on purpose


def test_check_visibility_names_both_numbers() -> None:
    policy = RetryPolicy(initial_wait=1000.0, multiplier=2.0, max_wait=3990.0, jitter=10.0)
    with pytest.raises(VisibilityTimeoutError) as info:
        policy.check_visibility(3600)
    assert str(info.value) == (
        "retry waits reach 4000.0 s but the broker redelivers unacknowledged messages after "
        "3600.0 s (visibility_timeout); lower max_wait or raise visibility_timeout"
    )
    policy.check_visibility(4000.5)


# -- inline retries -----------------------------------------------------------------------------


def test_retrying_retries_until_success_and_logs_one_warning_per_retry(
    caplog: pytest.LogCaptureFixture,
) -> None:
    policy = RetryPolicy(attempts=3, initial_wait=0.25, multiplier=2.0, jitter=0.0)
    retrying = policy.retrying(name="fetch")
    sleeps: list[float] = []
    retrying.sleep = sleeps.append  # record the waits instead of sleeping
    flaky = _flaky([TransientError("token=hunter2"), ConnectionResetError()])
    assert retrying(flaky) == "done"
    assert sleeps == [0.25, 0.5]
    assert retrying.statistics["attempt_number"] == 3
    records = _retry_records(caplog)
    assert [(r.levelno, r.getMessage()) for r in records] == [
        (logging.WARNING, "fetch: attempt 1 of 3 failed with TransientError; retrying in 0.25 s"),
        (
            logging.WARNING,
            "fetch: attempt 2 of 3 failed with ConnectionResetError; retrying in 0.50 s",
        ),
    ]
    assert "hunter2" not in caplog.text  # the message may hold a secret: only the type is logged


def test_retrying_reraises_the_last_real_exception() -> None:
    policy = RetryPolicy(attempts=2, initial_wait=0.0, jitter=0.0)
    last = TransientError("second")
    with pytest.raises(TransientError) as info:
        policy.retrying()(_flaky([TransientError("first"), last]))
    assert info.value is last


def test_a_permanent_error_fails_at_once_without_a_retry(
    caplog: pytest.LogCaptureFixture,
) -> None:
    retrying = RetryPolicy().retrying()
    with pytest.raises(PayloadError):
        retrying(_flaky([PayloadError("bad field")]))
    assert retrying.statistics["attempt_number"] == 1
    assert _retry_records(caplog) == []


def test_retrying_as_attempt_blocks(caplog: pytest.LogCaptureFixture) -> None:
    policy = RetryPolicy(attempts=3, initial_wait=0.0, jitter=0.0)
    flaky = _flaky([TimeoutError()])
    results = []
    for attempt in policy.retrying(name="block"):
        with attempt:
            results.append(flaky())
    assert results == ["done"]
    assert [r.getMessage() for r in _retry_records(caplog)] == [
        "block: attempt 1 of 3 failed with TimeoutError; retrying in 0.00 s"
    ]


def test_wrap_keeps_the_signature_and_retries(caplog: pytest.LogCaptureFixture) -> None:
    failures = iter([TransientError(), TransientError()])

    def fetch(case: int, *, court: str = "tjsp") -> str:
        """Fetch a case."""
        failure = next(failures, None)
        if failure is not None:
            raise failure
        return f"{court}:{case}"

    wrapped = RetryPolicy(attempts=3, initial_wait=0.0, jitter=0.0).wrap(fetch)
    assert inspect.signature(wrapped) == inspect.signature(fetch)
    assert wrapped.__name__ == "fetch"
    assert wrapped.__doc__ == "Fetch a case."
    assert wrapped(7, court="tjpr") == "tjpr:7"
    messages = [r.getMessage() for r in _retry_records(caplog)]
    assert len(messages) == 2
    assert all(m.startswith(f"{fetch.__qualname__}: attempt") for m in messages)


def test_wrap_refuses_a_coroutine_function() -> None:
    async def fetch() -> None:
        pass

    with pytest.raises(CrawjudTasksError, match="is a coroutine function"):
        RetryPolicy().wrap(fetch)


# -- the testing switch -------------------------------------------------------------------------


def test_the_switch_zeroes_the_waits_but_not_the_decisions(
    caplog: pytest.LogCaptureFixture,
) -> None:
    policy = RetryPolicy(attempts=3, initial_wait=30.0, jitter=5.0, timeout=100.0)
    with retry_waits(False):
        assert not retry_waits_enabled()
        retrying = policy.retrying(name="slow")
        assert retrying(_flaky([TransientError(), TransientError()])) == "done"
        assert retrying.statistics["idle_for"] == 0
        assert retrying.statistics["attempt_number"] == 3
        # Whether to retry is still decided on the waits production would make.
        assert policy.next_delay(0, 0.0, TransientError()) == 0.0
        assert policy.next_delay(0, 80.0, TransientError()) is None  # 80 + 30 > 100
        assert policy.next_delay(2, 0.0, TransientError()) is None
        assert policy.next_delay(0, 0.0, ValueError()) is None
    assert [r.getMessage().rsplit(";", 1)[1] for r in _retry_records(caplog)] == [
        " retrying in 0.00 s",
        " retrying in 0.00 s",
    ]
    assert retry_waits_enabled()
    delay = policy.next_delay(0, 0.0, TransientError())
    assert delay is not None
    assert delay >= 30.0


def test_the_switch_is_a_plain_call_too_and_nests() -> None:
    restore = retry_waits(False)  # takes effect at once
    with restore:
        assert not retry_waits_enabled()
        with retry_waits(True):
            assert retry_waits_enabled()
        assert not retry_waits_enabled()
    assert retry_waits_enabled()


@pytest.mark.slow
def test_the_environment_variable_switches_a_process() -> None:
    code = (
        "from crawjud_tasks import RetryPolicy, Settings, TransientError\n"
        "Settings.from_env()  # not mistaken for an unknown setting\n"
        "print(RetryPolicy(initial_wait=10.0).next_delay(0, 0.0, TransientError()))\n"
    )
    off = run_python(code, {"CRAWJUD_TASKS_RETRY_WAITS": "0"})
    assert off.returncode == 0, off.stderr
    assert off.stdout.strip() == "0.0"
    on = run_python(code)
    assert on.returncode == 0, on.stderr
    assert float(on.stdout) >= 10.0
    wrong = run_python(code, {"CRAWJUD_TASKS_RETRY_WAITS": "maybe"})
    assert "CRAWJUD_TASKS_RETRY_WAITS must be 0 (no retry waits) or 1 (waits)" in wrong.stderr


def test_the_variable_is_not_a_setting() -> None:
    assert Settings.from_env({"CRAWJUD_TASKS_RETRY_WAITS": "0"}) == Settings()


def test_worker_processes_inherit_the_switch(
    crawjud_app: Celery, crawjud_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CRAWJUD_TASKS_RETRY_WAITS", raising=False)
    workers: list[WorkerProcess] = []
    try:
        with retry_waits(False):
            workers.append(WorkerProcess(crawjud_app, settings=crawjud_settings))
        workers.append(WorkerProcess(crawjud_app, settings=crawjud_settings))
        assert workers[0].env["CRAWJUD_TASKS_RETRY_WAITS"] == "0"
        assert "CRAWJUD_TASKS_RETRY_WAITS" not in workers[1].env
        # The parent's variable follows the same rule; the in-process switch wins over it.
        monkeypatch.setenv("CRAWJUD_TASKS_RETRY_WAITS", "0")
        workers.append(WorkerProcess(crawjud_app, settings=crawjud_settings))
        with retry_waits(True):
            workers.append(WorkerProcess(crawjud_app, settings=crawjud_settings))
        assert workers[2].env["CRAWJUD_TASKS_RETRY_WAITS"] == "0"
        assert "CRAWJUD_TASKS_RETRY_WAITS" not in workers[3].env
    finally:
        for worker in workers:
            worker.log_path.unlink(missing_ok=True)
