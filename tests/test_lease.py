"""Run leases on a real Redis: one live holder, heartbeat, take-over, loss and release."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery
from celery.worker import WorkController

from crawjud_tasks import (
    BrokerUnavailableError,
    DuplicateRunError,
    Lease,
    LeaseError,
    LeaseHeldError,
    LeaseLostError,
    Settings,
    SettingsError,
    lease,
    task_contract,
)
from crawjud_tasks._delivery import held_lease
from crawjud_tasks._redis_server import free_port
from crawjud_tasks.testing import RedisServer, settings_for, wait_for
from tests.helpers import python_env

MakeApp = Callable[..., Celery]
#: Generous: waits end as soon as what they wait for happens.
PATIENCE = 20.0


@pytest.fixture
def backend(crawjud_redis: RedisServer) -> Iterator[redis.Redis]:
    """A client on the result backend's database, where the library keeps its keys."""
    client = crawjud_redis.client(1)
    yield client
    client.close()


class LostCalls:
    """An ``on_lost`` callback that records its calls."""

    def __init__(self) -> None:
        self.errors: list[LeaseLostError] = []
        self.called = threading.Event()

    def __call__(self, error: LeaseLostError) -> None:
        self.errors.append(error)
        self.called.set()


# -- one live holder ----------------------------------------------------------------------------


def test_a_second_holder_is_refused_while_the_first_renews(
    crawjud_app: Celery, backend: redis.Redis
) -> None:
    ttl = 1.0
    with lease(crawjud_app, "run:1", ttl, heartbeat=0.25, owner="first") as first:
        assert first.held
        assert backend.get("crawjud:lease:run:1").endswith(b" first")
        # Keep knocking for well over one ttl: the heartbeat keeps the first holder's lease.
        started = time.monotonic()
        refusals = 0
        while time.monotonic() - started < 2.5 * ttl:
            with pytest.raises(LeaseHeldError) as info:
                lease(crawjud_app, "run:1", ttl, owner="second").acquire()
            refusals += 1
            time.sleep(0.1)
        message = str(info.value)
        assert message.startswith("lease 'run:1' is held by 'first' for another ")
        assert message.endswith(" s unless renewed (crawjud:lease:run:1)")
        assert refusals > 10
        first.check()
        assert not first.lost
    assert backend.exists("crawjud:lease:run:1") == 0  # released on exit
    with lease(crawjud_app, "run:1", ttl, owner="second") as second:  # free again at once
        assert second.held


def test_explicit_acquire_and_release(crawjud_app: Celery, backend: redis.Redis) -> None:
    held = lease(crawjud_app, "run:2", 5.0)
    assert isinstance(held, Lease)
    with pytest.raises(LeaseError, match="is not held; acquire"):
        held.check()
    assert held.acquire() is held
    with pytest.raises(LeaseError, match="held by this Lease already"):
        held.acquire()
    assert backend.pttl("crawjud:lease:run:2") > 0
    held.release()
    held.release()  # nothing to do
    assert not held.held
    assert backend.exists("crawjud:lease:run:2") == 0
    assert held.acquire() is held  # taken again, with a new token
    held.release()


def test_an_error_in_the_body_releases_and_propagates(
    crawjud_app: Celery, backend: redis.Redis
) -> None:
    with pytest.raises(KeyError), lease(crawjud_app, "run:3", 5.0):
        raise KeyError("boom")
    assert backend.exists("crawjud:lease:run:3") == 0


def test_the_default_owner_is_hostname_and_pid(crawjud_app: Celery) -> None:
    held = lease(crawjud_app, "run:4")
    assert held.owner == f"{socket.gethostname()}:{os.getpid()}"
    assert held.ttl == 60.0
    assert held.heartbeat == 20.0


# -- a dead holder ------------------------------------------------------------------------------

_HOLDER = """
import sys, time
from crawjud_tasks import create_app, lease
held = lease(create_app(), "run:dead", 1.0, owner="doomed").acquire()
print("held", flush=True)
time.sleep(120)
"""


@pytest.mark.slow
def test_a_dead_holders_lease_is_taken_over(
    crawjud_app: Celery, crawjud_settings: Settings, backend: redis.Redis
) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", _HOLDER],
        env=python_env(crawjud_settings.to_env()),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "held", child.stderr and child.stderr.read()
        with pytest.raises(LeaseHeldError, match="held by 'doomed'"):
            lease(crawjud_app, "run:dead", 1.0).acquire()
        child.send_signal(signal.SIGKILL)  # the holder dies: no release, no more heartbeats
        child.wait(timeout=PATIENCE)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        for stream in (child.stdout, child.stderr):
            if stream is not None:
                stream.close()
    successor = lease(crawjud_app, "run:dead", 1.0, owner="successor")

    def taken() -> bool:
        try:
            successor.acquire()
        except LeaseHeldError:
            return False
        return True

    assert wait_for(taken, PATIENCE, interval=0.02)
    assert backend.get("crawjud:lease:run:dead").endswith(b" successor")
    successor.release()


# -- a holder that loses its lease --------------------------------------------------------------


def test_a_holder_whose_key_is_deleted_is_told_everywhere(
    crawjud_app: Celery, backend: redis.Redis
) -> None:
    on_lost = LostCalls()
    held = lease(crawjud_app, "run:5", 1.0, heartbeat=0.1, on_lost=on_lost)

    def body() -> None:
        with held:
            backend.delete("crawjud:lease:run:5")
            assert on_lost.called.wait(PATIENCE)
            assert held.lost
            assert not held.held
            with pytest.raises(LeaseLostError, match="'run:5'") as at_check:
                held.check()
            assert at_check.value is on_lost.errors[0]

    with pytest.raises(LeaseLostError, match="expired or was deleted") as at_exit:
        body()  # the body ends normally: leaving the lease says it was lost
    assert at_exit.value is on_lost.errors[0]
    assert len(on_lost.errors) == 1
    assert held.lost  # still known after release


def test_a_holder_taken_over_learns_who_has_it_and_leaves_it_alone(
    crawjud_app: Celery, backend: redis.Redis
) -> None:
    on_lost = LostCalls()
    first = lease(crawjud_app, "run:6", 1.0, heartbeat=0.1, owner="first", on_lost=on_lost)
    first.acquire()
    backend.delete("crawjud:lease:run:6")  # as if it had expired...
    second = lease(crawjud_app, "run:6", 5.0, owner="second").acquire()  # ...and been taken
    assert on_lost.called.wait(PATIENCE)
    with pytest.raises(LeaseLostError, match="'second' holds it now"):
        first.check()
    first.release()  # never deletes the second holder's lease
    assert backend.get("crawjud:lease:run:6").endswith(b" second")
    second.check()
    second.release()
    assert backend.exists("crawjud:lease:run:6") == 0


def test_release_leaves_a_key_it_does_not_hold(crawjud_app: Celery, backend: redis.Redis) -> None:
    held = lease(crawjud_app, "run:7", 30.0).acquire()  # no renewal before the release
    backend.set("crawjud:lease:run:7", b"not-our-token other")
    held.release()
    assert backend.get("crawjud:lease:run:7") == b"not-our-token other"


def test_evict_deletes_only_the_named_holders_lease(
    crawjud_app: Celery, backend: redis.Redis
) -> None:
    from crawjud_tasks._lease import evict

    with lease(crawjud_app, "run:9", 30.0, owner="host:41"):
        assert evict(crawjud_app, "run:9", "host:4") is False  # another holder's label
        assert evict(crawjud_app, "run:9", "host:411") is False
        assert backend.exists("crawjud:lease:run:9") == 1
        assert evict(crawjud_app, "run:9", "host:41") is True  # the holder known to be dead
        assert backend.exists("crawjud:lease:run:9") == 0
        following = lease(crawjud_app, "run:9", 30.0).acquire()  # free for the next holder
        following.release()
    assert evict(crawjud_app, "run:10", "host:41") is False  # no lease at all


def test_a_lease_set_without_ttl_says_so(crawjud_app: Celery, backend: redis.Redis) -> None:
    backend.set("crawjud:lease:run:8", b"token someone")
    with pytest.raises(LeaseHeldError, match="held by 'someone' and never expires"):
        lease(crawjud_app, "run:8").acquire()


# -- Redis unreachable --------------------------------------------------------------------------


def test_acquire_on_an_unreachable_redis_is_broker_unavailable(make_app: MakeApp) -> None:
    url = f"redis://:hunter2@127.0.0.1:{free_port()}/0"
    app = make_app({"broker_url": url, "broker_connection_timeout": 1.0})
    with pytest.raises(BrokerUnavailableError) as info:
        lease(app, "run:9").acquire()
    assert "hunter2" not in str(info.value)


@pytest.fixture
def own_redis(crawjud_data_dir: Path, make_app: MakeApp) -> Iterator[tuple[RedisServer, Celery]]:
    """A Redis server of the test's own, which it may stop, and an app on it."""
    with RedisServer() as server:
        settings = settings_for(server, crawjud_data_dir, broker_connection_timeout=1.0)
        yield server, make_app(settings)


def test_renewals_outlive_a_short_outage(
    own_redis: tuple[RedisServer, Celery], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="crawjud_tasks.lease")
    server, app = own_redis
    ttl = 2.5
    on_lost = LostCalls()
    with lease(app, "run:10", ttl, heartbeat=0.25, on_lost=on_lost) as held:
        server.stop(keep_files=True)
        assert wait_for(lambda: "renewal failed, retrying" in caplog.text, PATIENCE, interval=0.02)
        server.start()  # the key comes back from the append-only file
        restarted = time.monotonic()
        # Long enough that the lease would have expired without a renewal after the restart.
        wait_for(
            lambda: time.monotonic() - restarted > 1.5 * ttl or held.lost, PATIENCE, interval=0.02
        )
        assert not held.lost
        held.check()
    assert on_lost.errors == []


def test_a_lease_that_cannot_be_renewed_for_a_whole_ttl_is_lost(
    own_redis: tuple[RedisServer, Celery],
) -> None:
    server, app = own_redis
    on_lost = LostCalls()
    held = lease(app, "run:11", 1.0, heartbeat=0.2, on_lost=on_lost)

    def body() -> None:
        with held:
            server.kill()
            assert on_lost.called.wait(PATIENCE)
            assert held.lost

    # The release on exit cannot reach Redis either: the loss, not that, is reported.
    with pytest.raises(LeaseLostError, match=r"no renewal reached Redis within its 1\.0 s ttl"):
        body()
    assert len(on_lost.errors) == 1


# -- validation ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"ttl": 0}, "lease ttl must be a finite number of at least 0.001 s, got 0"),
        ({"ttl": -1.0}, "lease ttl must be a finite number"),
        ({"ttl": float("inf")}, "lease ttl must be a finite number"),
        ({"ttl": True}, "lease ttl must be a finite number"),
        ({"ttl": 1.0, "heartbeat": 0}, "lease heartbeat must be a finite number"),
        (
            {"ttl": 2.0, "heartbeat": 5.0},
            r"lease heartbeat \(5.0 s\) must be shorter than its ttl \(2.0 s\)",
        ),
        ({"ttl": 2.0, "heartbeat": 2.0}, "must be shorter than its ttl"),
        ({"key": ""}, "a lease key must be a non-empty string, got ''"),
        ({"owner": ""}, "a lease owner must be a non-empty string, got ''"),
    ],
)
def test_invalid_arguments_are_refused_in_one_line(
    crawjud_app: Celery, arguments: dict[str, object], message: str
) -> None:
    options = {"key": "run:12"} | arguments
    with pytest.raises(SettingsError, match=message) as info:
        lease(crawjud_app, **options)  # type: ignore[arg-type]  # wrong on purpose
    assert "\n" not in str(info.value)


# -- the delivery guard's lease, named by the implementation ---------------------------------------


@task_contract("tests.leased_run", delivery="at_least_once")
def leased_run(run_id: str) -> list[str]:
    """Answers the lease keys in Redis while it runs, the held lease's key first."""
    raise NotImplementedError


@pytest.fixture
def leased_app(crawjud_app: Celery, backend: redis.Redis) -> Celery:
    """``crawjud_app`` with ``leased_run`` guarded by the lease ``run:<run_id>``."""

    @leased_run.implement_bound(crawjud_app, lease=lambda task, run_id: f"run:{run_id}")
    def _run(task: Any, run_id: str) -> list[str]:
        held = held_lease(task)
        assert held is not None
        held.check()
        return [held.key, *sorted(key.decode() for key in backend.scan_iter("crawjud:lease:*"))]

    return crawjud_app


@pytest.mark.slow
def test_the_guard_holds_the_lease_the_implementation_names_and_no_other(
    leased_app: Celery, crawjud_worker: WorkController, backend: redis.Redis
) -> None:
    seen = leased_run.using(leased_app).delay("r1").get(timeout=PATIENCE)
    assert seen == ["run:r1", "crawjud:lease:run:r1"]  # one lease, no task:<name>:<id> one
    assert backend.get("crawjud:lease:run:r1") is None  # given back when the run ended


@pytest.mark.slow
def test_a_live_holder_of_the_named_lease_fails_the_run_as_a_duplicate(
    leased_app: Celery, crawjud_worker: WorkController
) -> None:
    with lease(leased_app, "run:r2", 30.0, owner="elsewhere:1"):
        result = leased_run.using(leased_app).delay("r2")
        with pytest.raises(DuplicateRunError, match="run:r2 is running already"):
            result.get(timeout=PATIENCE)


@pytest.mark.slow
def test_the_named_lease_of_a_dead_process_here_is_taken_over_at_once(
    leased_app: Celery, crawjud_worker: WorkController, backend: redis.Redis
) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    # The dead process's lease, with 30 s still to run.
    backend.set("crawjud:lease:run:r3", f"token {socket.gethostname()}:{dead.pid}", px=30_000)
    started = time.monotonic()
    seen = leased_run.using(leased_app).delay("r3").get(timeout=PATIENCE)
    assert seen == ["run:r3", "crawjud:lease:run:r3"]
    assert time.monotonic() - started < 10.0  # taken over at once, not after the ttl
