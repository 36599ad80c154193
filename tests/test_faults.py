"""Fault injection: real worker processes on a real Redis, with faults a production worker meets.

Each test gets its own throwaway redis-server (append-only persistence on) and its own workers,
with the visibility timeout shrunk to a few seconds and kombu's restore sweep run every second,
so that what takes an hour in production takes seconds here. Side effects are noted by the
example implementations in a Redis list (``tests/examples/worker.py``).

A dispatch to a broker that is down is covered by ``tests/test_broker_unavailable.py``.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from celery import Celery

import crawjud_tasks
from crawjud_tasks import Settings, create_app
from crawjud_tasks.testing import RedisServer, WorkerProcess, close_app, settings_for, wait_for
from tests.examples import contracts as c
from tests.helpers import RESTORE_EVERY_SECOND, ROOT, python_path

pytestmark = pytest.mark.slow

NAMESPACE = "ft"
LOG_KEY = "faults:log"


class Rig:
    """A redis-server, a host app on it and the workers a test starts."""

    def __init__(self, directory: Path, visibility_timeout: float) -> None:
        self.server = RedisServer(directory / "redis", appendonly=True)
        self.settings: Settings = settings_for(
            self.server,
            directory / "data",
            namespace=NAMESPACE,
            visibility_timeout=visibility_timeout,
            celery={"broker_transport_options": RESTORE_EVERY_SECOND},
        )
        self.server.start()
        try:
            self.host: Celery = create_app(self.settings)
        except BaseException:
            self.server.stop()  # a rig that could not be built leaves no server behind
            raise
        self.log = self.server.client(2)
        self.broker = self.server.client(0)
        self.workers: list[WorkerProcess] = []

    def worker(self, **options: Any) -> WorkerProcess:
        """Start a worker of the example implementations (``tests/examples/worker.py``)."""
        source = str(Path(crawjud_tasks.__file__).parents[1])  # the package under test
        env = {
            **self.settings.to_env(),
            "EXAMPLES_REDIS_URL": self.server.url_for(2),
            "EXAMPLES_LOG_KEY": LOG_KEY,
            "PYTHONPATH": python_path(source, str(ROOT)),
        }
        options.setdefault("loglevel", "INFO")
        process = WorkerProcess(self.host, app_spec="tests.examples.worker:app", env=env, **options)
        self.workers.append(process)
        return process.start()

    def entries(self) -> list[str]:
        raw: list[bytes] = self.log.lrange(LOG_KEY, 0, -1)  # type: ignore[assignment]  # redis-py types replies as sync-or-async
        return [entry.decode() for entry in raw]

    def notes(self, marker: str, kind: str) -> list[str]:
        return [e for e in self.entries() if e.startswith(f"{marker}:{kind}")]

    def unacked(self) -> int:
        """Messages delivered and not yet acknowledged (kombu's unacked hash)."""
        return int(self.broker.hlen(f"{NAMESPACE}:unacked"))  # type: ignore[arg-type]  # redis-py types replies as sync-or-async

    def close(self) -> None:
        for process in self.workers:
            process.kill()
            # Shown by pytest when the test failed.
            print(f"--- worker {process.nodename} ---\n{process.output()}")
            process.log_path.unlink(missing_ok=True)
        self.log.close()
        self.broker.close()
        close_app(self.host)
        self.server.stop()


@pytest.fixture
def make_rig(tmp_path: Path) -> Iterator[Callable[..., Rig]]:
    rigs: list[Rig] = []

    def make(visibility_timeout: float = 4.0) -> Rig:
        rig = Rig(tmp_path / str(len(rigs)), visibility_timeout)
        rigs.append(rig)
        return rig

    yield make
    for rig in rigs:
        rig.close()


# -- 1. a pool child killed mid-task ----------------------------------------------------------

#: Celery requeues the message of a pool process that died at once, without the visibility
#: timeout. The requeued message may then wait a few seconds for the replacement process (about
#: 5 s seen here): a visibility timeout shorter than that would deliver it once more meanwhile.
AFTER_A_LOST_CHILD = 30.0


def test_a_task_whose_pool_child_is_killed_is_redelivered_and_completes_once(
    make_rig: Callable[..., Rig],
) -> None:
    rig = make_rig(visibility_timeout=AFTER_A_LOST_CHILD)
    worker = rig.worker(pool="prefork", concurrency=1)
    result = c.effect.using(rig.host).delay("s1", 2.0)
    first = wait_for(lambda: rig.notes("s1", "start"), what="the task to start")[0]
    child = int(first.rsplit(":", 1)[1])
    assert child != worker.pid  # a pool child, not the worker's main process
    os.kill(child, signal.SIGKILL)
    assert result.get(timeout=40) == "s1"
    starts = rig.notes("s1", "start")
    assert len(starts) == 2, rig.entries()
    assert starts[1] != first  # the second run was in another child
    assert rig.notes("s1", "end") == ["s1:end"]
    wait_for(lambda: rig.unacked() == 0, what="the message to be acknowledged")


# -- 2. a poison message ----------------------------------------------------------------------


def test_a_task_that_kills_its_process_on_every_delivery_stops_as_poison(
    make_rig: Callable[..., Rig],
) -> None:
    from crawjud_tasks import PoisonMessageError, poison_messages

    rig = make_rig(visibility_timeout=AFTER_A_LOST_CHILD)
    rig.worker(pool="prefork", concurrency=1)
    result = c.crash.using(rig.host).delay("p")
    with pytest.raises(PoisonMessageError, match="delivered 4 times"):
        result.get(timeout=60)
    assert len([e for e in rig.entries() if e.startswith("p:")]) == 3  # max_deliveries
    records = poison_messages(rig.host)
    assert [(r.task_id, r.task, r.deliveries) for r in records] == [
        (result.id, f"{NAMESPACE}.examples.crash", 4)
    ]
    assert "died or was killed" in records[0].reason
    # Other tasks keep flowing.
    assert c.add.using(rig.host).delay(2, 3).get(timeout=20) == 5
    wait_for(lambda: rig.unacked() == 0, what="the messages to be acknowledged")


def test_an_at_least_once_message_is_acknowledged_when_its_run_fails(
    make_rig: Callable[..., Rig],
) -> None:
    from crawjud_tasks import PayloadError

    rig = make_rig()
    rig.worker()
    bad = rig.host.send_task(f"{NAMESPACE}.examples.effect", args=[123])  # marker: str
    with pytest.raises(PayloadError):
        c.effect.using(rig.host).result(bad.id).get(timeout=20)
    wait_for(lambda: rig.unacked() == 0, what="the failed message to be acknowledged")
    assert rig.broker.llen(NAMESPACE) == 0  # not requeued either
    assert rig.entries() == []


# -- 3. a run that outlives the visibility timeout ----------------------------------------------


def deliveries(rig: Rig, task_id: str) -> int:
    """How many times the workers received ``task_id`` (each logs it at INFO)."""
    return sum(w.output().count(f"[{task_id}] received") for w in rig.workers)


def test_a_run_longer_than_the_visibility_timeout_is_not_redelivered_while_alive(
    make_rig: Callable[..., Rig],
) -> None:
    rig = make_rig(visibility_timeout=3.0)
    rig.worker()
    rig.worker()  # idle, sweeping for expired messages every second
    result = c.effect.using(rig.host).delay("long", 9.0)
    assert result.get(timeout=40) == "long"
    assert len(rig.notes("long", "start")) == 1
    assert rig.notes("long", "end") == ["long:end"]
    assert deliveries(rig, result.id) == 1, [w.output() for w in rig.workers]
    wait_for(lambda: rig.unacked() == 0, what="the message to be acknowledged")


def test_a_run_whose_worker_died_is_redelivered_by_the_visibility_timeout(
    make_rig: Callable[..., Rig],
) -> None:
    # The control of the test above: with these settings kombu's sweep does restore a message
    # whose worker stopped touching it, and the new delivery is not taken for a live duplicate.
    rig = make_rig(visibility_timeout=3.0)
    workers = [rig.worker(), rig.worker()]  # solo pool: the task runs in the worker's process
    result = c.effect.using(rig.host).delay("orphan", 3.0)
    first = wait_for(lambda: rig.notes("orphan", "start"), what="the task to start")[0]
    pid = int(first.rsplit(":", 1)[1])
    [running] = [w for w in workers if w.pid == pid]
    running.kill()
    assert result.get(timeout=40) == "orphan"
    starts = rig.notes("orphan", "start")
    assert len(starts) == 2, rig.entries()
    assert starts[1] != first
    assert rig.notes("orphan", "end") == ["orphan:end"]
    wait_for(lambda: rig.unacked() == 0, what="the message to be acknowledged")


# -- 4. Redis restarted mid-run -------------------------------------------------------------


def test_tasks_survive_a_redis_restart_and_run_once(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig()
    worker = rig.worker(pool="prefork", concurrency=2)
    markers = [f"r{i}" for i in range(6)]
    results = [c.effect.using(rig.host).delay(m, 1.0) for m in markers]
    wait_for(lambda: any(":start:" in e for e in rig.entries()), what="a task to start")
    rig.server.restart()  # SIGTERM: the append-only file is flushed; the same port and files
    # Wait until every task completed, or the worker exited: with Celery 5.7 and kombu 5.7 a
    # prefork worker that loses Redis while it holds unacknowledged messages may stop with
    # "Unrecoverable error: AttributeError(...'hostname')" (upstream). A supervisor starts it
    # again; so does this test, and the messages it held come back by the visibility timeout.
    wait_for(
        lambda: not worker.running or all(r.ready() for r in results),
        timeout=60,
        what="the tasks to complete or the worker to exit",
    )
    restarted = not worker.running
    if restarted:
        rig.worker(pool="prefork", concurrency=2)
    assert [r.get(timeout=60) for r in results] == markers
    for marker in markers:
        assert len(rig.notes(marker, "start")) == 1, (restarted, rig.entries())
        assert rig.notes(marker, "end") == [f"{marker}:end"], (restarted, rig.entries())
    wait_for(lambda: rig.unacked() == 0, what="the messages to be acknowledged")


def test_a_message_delivered_again_after_its_run_ended_is_dropped(
    make_rig: Callable[..., Rig],
) -> None:
    # What a lost acknowledgement leads to, without waiting for one: the same message again.
    rig = make_rig()
    worker = rig.worker()
    first = c.effect.using(rig.host).delay("again")
    assert first.get(timeout=20) == "again"
    rig.host.send_task(f"{NAMESPACE}.examples.effect", args=["again"], task_id=first.id)
    assert c.add.using(rig.host).delay(1, 1).get(timeout=20) == 2  # sent after it: it was taken
    wait_for(lambda: "delivered again after its run ended" in worker.output(), what="the drop")
    assert len(rig.notes("again", "start")) == 1
    assert first.get(timeout=20) == "again"
    wait_for(lambda: rig.unacked() == 0, what="the copy to be acknowledged")


# -- 6. messages the worker must refuse -------------------------------------------------------

SECRET = "s3cr3t-T0KEN-do-not-log"


def test_refused_messages_are_not_run_and_their_payload_is_not_logged(
    make_rig: Callable[..., Rig],
) -> None:
    rig = make_rig()
    worker = rig.worker()
    # A known task's message in pickle, and a message for a task that no one registered, each
    # with a secret in its arguments (and so in its body and its argsrepr header).
    pickled = rig.host.send_task(
        f"{NAMESPACE}.examples.record", args=[f"pickled-{SECRET}"], serializer="pickle"
    )
    unknown = rig.host.send_task(f"{NAMESPACE}.examples.nope", args=[f"unknown-{SECRET}"])
    # The worker keeps consuming.
    assert c.add.using(rig.host).delay(20, 22).get(timeout=20) == 42
    wait_for(lambda: rig.unacked() == 0 and rig.broker.llen(NAMESPACE) == 0, what="an empty queue")
    assert rig.entries() == []  # nothing ran
    assert pickled.state == "PENDING"  # never ran, so no result either
    assert unknown.state == "FAILURE"  # Celery records NotRegistered
    output = worker.output()
    assert SECRET not in output
    # What the operator needs stays: the reason, and the task's name and id where Celery has them.
    assert (
        "Received invalid task message: Refusing to deserialize untrusted content of type pickle"
        in output
    )
    assert f"Received unregistered task of type '{NAMESPACE}.examples.nope' (id {unknown.id})" in (
        output
    )
    assert "its body and headers are not logged" in output
