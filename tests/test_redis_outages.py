"""Short Redis outages under real worker processes: no outcome lost, no run repeated, no stop.

Each test stops a real redis-server for a few seconds while runs are in flight, then starts it
again on the same port and files (append-only persistence on), as a restart or a network blip
would. The visibility timeout is shrunk and kombu's restore sweep runs every second, so that a
message whose acknowledgement went missing comes back within the test.
"""

from __future__ import annotations

import sys
import time
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

NAMESPACE = "ro"
LOG_KEY = "outages:log"
APP_SPEC = "tests.examples.worker:app"


class Rig:
    """A broker redis-server (and a result backend on its own server, if asked), a host app and
    the workers a test starts."""

    def __init__(
        self,
        directory: Path,
        visibility_timeout: float,
        *,
        own_backend: bool,
        celery: dict[str, Any],
    ) -> None:
        self.server = RedisServer(directory / "redis", appendonly=True).start()
        self.backend = RedisServer(directory / "backend", appendonly=True) if own_backend else None
        changes: dict[str, Any] = {}
        if self.backend is not None:
            changes["result_backend"] = self.backend.start().url_for(0)
        self.settings: Settings = settings_for(
            self.server,
            directory / "data",
            namespace=NAMESPACE,
            visibility_timeout=visibility_timeout,
            celery={"broker_transport_options": RESTORE_EVERY_SECOND, **celery},
            **changes,
        )
        self.host: Celery = create_app(self.settings)
        self.log = self.server.client(2)
        self.broker = self.server.client(0)
        self.workers: list[WorkerProcess] = []

    def worker(self, **options: Any) -> WorkerProcess:
        source = str(Path(crawjud_tasks.__file__).parents[1])  # the package under test
        env = {
            **self.settings.to_env(),
            "EXAMPLES_REDIS_URL": self.server.url_for(2),
            "EXAMPLES_LOG_KEY": LOG_KEY,
            "PYTHONPATH": python_path(source, str(ROOT)),
        }
        options.setdefault("loglevel", "INFO")
        program = options.pop("program", "crawjud-tasks")
        process = WorkerProcess(self.host, app_spec=APP_SPEC, env=env, **options)
        if program == "celery":  # the same worker through Celery's own command line
            worker_args = process.command[process.command.index("worker") :]
            process.command = [sys.executable, "-m", "celery", "-A", APP_SPEC, *worker_args]
        self.workers.append(process)
        return process.start()

    def starts(self, marker: str) -> list[str]:
        raw: list[bytes] = self.log.lrange(LOG_KEY, 0, -1)  # type: ignore[assignment]  # redis-py types replies as sync-or-async
        return [e.decode() for e in raw if e.decode().startswith(f"{marker}:start")]

    def unacked(self) -> int:
        """Messages delivered and not yet acknowledged (kombu's unacked hash)."""
        return int(self.broker.hlen(f"{NAMESPACE}:unacked"))  # type: ignore[arg-type]  # redis-py types replies as sync-or-async

    def close(self) -> None:
        for process in self.workers:
            process.kill()
            print(f"--- worker {process.nodename} ---\n{process.output()}")  # shown on failure
            process.log_path.unlink(missing_ok=True)
        try:
            self.log.close()
            self.broker.close()
            close_app(self.host)
        finally:  # the servers stop even if a client's clean-up failed
            self.server.stop()
            if self.backend is not None:
                self.backend.stop()


@pytest.fixture
def make_rig(tmp_path: Path) -> Iterator[Callable[..., Rig]]:
    rigs: list[Rig] = []

    def make(visibility_timeout: float, *, own_backend: bool = False, **celery: Any) -> Rig:
        directory = tmp_path / str(len(rigs))
        rig = Rig(directory, visibility_timeout, own_backend=own_backend, celery=celery)
        rigs.append(rig)
        return rig

    yield make
    for rig in rigs:
        rig.close()


def outage(server: RedisServer, seconds: float) -> None:
    """Stop ``server`` (its files kept) for ``seconds``, then start it again on the same port."""
    server.stop(keep_files=True)
    time.sleep(seconds)
    server.start()


# -- item 3: an at-least-once run that ends while Redis is down ---------------------------------


def test_an_at_least_once_run_that_ends_during_an_outage_stores_its_result_and_runs_once(
    make_rig: Callable[..., Rig],
) -> None:
    rig = make_rig(visibility_timeout=20.0)
    worker = rig.worker()  # solo: the run, its end mark, its result and its ack in one process
    result = c.settle.using(rig.host).delay("s", 1.0)
    wait_for(lambda: rig.starts("s"), what="the run to start")
    outage(rig.server, 2.5)  # the run ends 1 s into it
    assert result.get(timeout=30) == "s"
    assert result.state == "SUCCESS"
    wait_for(lambda: rig.unacked() == 0, timeout=30, what="the message to be acknowledged")
    # Past the visibility timeout, nothing came back to run a second time.
    time.sleep(2.0)
    assert rig.starts("s") == [rig.starts("s")[0]]
    output = worker.output()
    assert "would run again" not in output
    assert worker.running


# -- item 4: the result backend, on its own Redis, is down when runs end -------------------------


def test_results_of_runs_that_end_while_the_backend_is_down_are_stored_when_it_is_back(
    make_rig: Callable[..., Rig],
) -> None:
    rig = make_rig(visibility_timeout=30.0, own_backend=True)
    assert rig.backend is not None
    rig.worker(pool="prefork", concurrency=2)
    guarded = c.settle.using(rig.host).delay("g", 1.0)  # at least once
    plain = c.pause.using(rig.host).delay("p", 1.0)  # at most once
    wait_for(lambda: rig.starts("g") and rig.starts("p"), what="both runs to start")
    rig.backend.stop(keep_files=True)
    time.sleep(3.0)  # both runs have ended: their outcomes wait for the backend
    # The at-least-once message is not acknowledged while its outcome is not stored.
    assert rig.unacked() == 1
    time.sleep(4.0)
    rig.backend.start()
    assert guarded.get(timeout=30) == "g"
    assert plain.get(timeout=30) == "p"
    wait_for(lambda: rig.unacked() == 0, timeout=30, what="the message to be acknowledged")
    assert len(rig.starts("g")) == 1
    assert len(rig.starts("p")) == 1


# -- item 5: a prefork worker that loses the broker while runs are in flight ---------------------


@pytest.mark.parametrize("program", ["crawjud-tasks", "celery"])
def test_a_prefork_worker_keeps_consuming_after_a_broker_blip(
    make_rig: Callable[..., Rig], program: str
) -> None:
    rig = make_rig(visibility_timeout=20.0)
    worker = rig.worker(pool="prefork", concurrency=2, program=program)
    results = [c.settle.using(rig.host).delay(f"b{i}", 2.0) for i in range(2)]
    wait_for(lambda: all(rig.starts(f"b{i}") for i in range(2)), what="both runs to start")
    outage(rig.server, 2.0)
    # Celery 5.7 and kombu 5.7 stopped this worker with "Unrecoverable error:
    # AttributeError(... 'hostname')", and exit status 0.
    assert [r.get(timeout=40) for r in results] == ["b0", "b1"]
    assert c.add.using(rig.host).delay(2, 3).get(timeout=30) == 5
    assert worker.running, worker.output()[-3000:]
    assert "Unrecoverable error" not in worker.output()
    wait_for(lambda: rig.unacked() == 0, timeout=30, what="the messages to be acknowledged")
    for i in range(2):
        assert len(rig.starts(f"b{i}")) == 1


def test_a_worker_that_stops_on_a_failure_exits_non_zero(
    make_rig: Callable[..., Rig],
) -> None:
    # A supervisor restarts a worker on failure only if its exit status says so. Told not to
    # reconnect, Celery's worker stops with status 1 when it loses the broker (`celery worker`
    # does); `crawjud-tasks worker` used to drop the status and exit 0.
    rig = make_rig(visibility_timeout=20.0, broker_connection_retry=False)
    worker = rig.worker()
    rig.server.stop(keep_files=True)
    wait_for(lambda: not worker.running, what="the worker to exit")
    assert worker.stop() == 1, worker.output()[-2000:]
    assert "Shutting down" in worker.output()
    rig.server.start()  # for the rig's clean-up
