"""Testing helpers and the pytest plugin of crawjud-tasks: real Redis, real workers.

Installed as a pytest plugin (entry point ``pytest11``), so its fixtures are available in any test
suite that has crawjud-tasks installed, with nothing to import:

- ``crawjud_redis_server`` (session): a throwaway real ``redis-server`` on ``127.0.0.1`` and a
  free port, in a temporary folder (needs the ``embedded`` extra or ``redis-server`` on PATH).
- ``crawjud_redis``: the same server, emptied before the test.
- ``crawjud_settings``: :class:`~crawjud_tasks.Settings` on that server, with a temporary data
  folder. Override it in your ``conftest.py`` to add your own settings.
- ``crawjud_app``: ``create_app(crawjud_settings)``.
- ``crawjud_worker``: a worker for ``crawjud_app`` in a thread of the test process (Celery's
  ``start_worker``), consuming every queue of the app, stopped after the test.
- ``crawjud_worker_process``: a factory that starts real worker subprocesses
  (:class:`WorkerProcess`), which a test can stop or kill; all are stopped after the test.

:func:`retry_waits` switches the waits of retry policies off (or on) in the test process, and in
the worker subprocesses started while it is off. :func:`wait_for` polls a condition until it
holds (a result stored, a worker gone, a message received) and fails the test if it never does.

Nothing here is a fake: the same broker, backend and worker code paths as production run.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from celery import Celery
from celery.contrib.testing.worker import start_worker
from celery.worker import WorkController

from crawjud_tasks._app import close_app, create_app
from crawjud_tasks._redis_server import RedisServer
from crawjud_tasks._retry import RetryWaits, set_retry_waits
from crawjud_tasks._settings import Settings
from crawjud_tasks._worker_process import WorkerProcess
from crawjud_tasks._worker_thread import SETEX_WARNING_FILTER, LateTasksConsumer

__all__ = [
    "RedisServer",
    "WorkerProcess",
    "close_app",
    "crawjud_app",
    "crawjud_redis",
    "crawjud_redis_server",
    "crawjud_settings",
    "crawjud_worker",
    "crawjud_worker_process",
    "retry_waits",
    "settings_for",
    "wait_for",
]

T = TypeVar("T")


def retry_waits(enabled: bool) -> RetryWaits:
    """Switch the waits of every retry policy off (``False``) or back on, in this process.

    The policies decide whether to retry exactly as in production and still log each retry; only
    the waits become 0 s. Works as a plain call (until changed again) and as a context manager
    that restores the previous state on exit::

        with retry_waits(False):
            flaky_call_wrapped_in_a_policy()

    Worker subprocesses (:class:`WorkerProcess`) created while the waits are off get
    ``CRAWJUD_TASKS_RETRY_WAITS=0`` in their environment, which switches them off there too.
    """
    return set_retry_waits(enabled)


def settings_for(server: RedisServer, data_dir: Path, **changes: Any) -> Settings:
    """Settings whose broker (database 0) and result backend (database 1) are on ``server``."""
    base: dict[str, Any] = {
        "broker_url": server.url_for(0),
        "result_backend": server.url_for(1),
        "data_dir": str(data_dir),
    }
    return Settings.from_mapping(base | changes)


def wait_for(
    condition: Callable[[], T], timeout: float = 30.0, *, interval: float = 0.05, what: str = ""
) -> T:
    """Call ``condition`` until it returns something truthy, and return that; fail the test if not.

    Work done by a worker (another thread or process) lands when it lands: poll for it instead of
    sleeping a fixed time. The wait ends as soon as the condition holds, so be generous with
    ``timeout``; the last call, which decides a failure, comes after the deadline::

        wait_for(lambda: run_state(app, run_id) is not None, what="the run to start")
        pid = wait_for(lambda: find_pid(log), timeout=60)

    Args:
        condition: Called with no arguments, in this thread; a truthy return ends the wait.
        timeout: Seconds to wait at most.
        interval: Seconds between two calls.
        what: What is awaited, for the failure message (default: the condition's name and
            where it is defined).

    Returns:
        The condition's first truthy return value.

    Raises:
        pytest.fail.Exception: ``gave up after <timeout> s waiting for <what>``.
    """
    __tracebackhide__ = True  # pytest shows the failing test's line, not this loop
    deadline = time.monotonic() + timeout
    while True:
        expired = time.monotonic() >= deadline
        value = condition()
        if value:
            return value
        if expired:  # this last call came after the deadline
            pytest.fail(f"gave up after {timeout:g} s waiting for {what or _describe(condition)}")
        time.sleep(interval)


def _describe(condition: Callable[[], object]) -> str:
    """``name (file:line)`` of a function, or the repr of any other callable."""
    code = getattr(condition, "__code__", None)
    name = getattr(condition, "__qualname__", None)
    if code is None or name is None:
        return repr(condition)
    return f"{name} ({Path(code.co_filename).name}:{code.co_firstlineno})"


def pytest_configure(config: pytest.Config) -> None:
    """Hide, in the host's test runs too, the warning Celery's Redis result backend triggers on
    every stored result: it calls ``SETEX``, which redis-py 8 marks deprecated. The host's own
    ``filterwarnings`` entries come after this one and win."""
    config.addinivalue_line("filterwarnings", SETEX_WARNING_FILTER)


@pytest.fixture(scope="session")
def crawjud_redis_server() -> Iterator[RedisServer]:
    """A real redis-server for the whole test session."""
    with RedisServer() as server:
        yield server


@pytest.fixture
def crawjud_redis(crawjud_redis_server: RedisServer) -> RedisServer:
    """The session's redis-server, emptied before the test (restarted if a test stopped it)."""
    if not crawjud_redis_server.running:
        crawjud_redis_server.start()
    client = crawjud_redis_server.client()
    try:
        client.flushall()  # pyright: ignore[reportUnknownMemberType]  (redis-py leaves **kwargs unannotated)
    finally:
        client.close()
    return crawjud_redis_server


@pytest.fixture
def crawjud_data_dir() -> Iterator[Path]:
    """A short temporary data folder (short enough for unix socket paths)."""
    path = Path(tempfile.mkdtemp(prefix="cjt-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def crawjud_settings(crawjud_redis: RedisServer, crawjud_data_dir: Path) -> Settings:
    """Settings on the test Redis with a temporary data folder."""
    return settings_for(crawjud_redis, crawjud_data_dir)


@pytest.fixture
def crawjud_app(crawjud_settings: Settings) -> Iterator[Celery]:
    """``create_app(crawjud_settings)``, closed after the test."""
    app = create_app(crawjud_settings)
    yield app
    close_app(app)


@pytest.fixture
def crawjud_worker(crawjud_app: Celery) -> Iterator[WorkController]:
    """A worker thread (Celery's ``start_worker``, solo pool) consuming all of the app's queues.

    It shares the test's process, so a contract implemented (or a bot registered) on
    ``crawjud_app`` in the test body, after the worker started, runs on it too.
    """
    with start_worker(
        crawjud_app,
        pool="solo",
        perform_ping_check=False,
        shutdown_timeout=10.0,
        consumer_cls=LateTasksConsumer,
    ) as worker:
        yield worker


@pytest.fixture
def crawjud_worker_process(
    crawjud_app: Celery, crawjud_settings: Settings
) -> Iterator[Callable[..., WorkerProcess]]:
    """A factory of started worker subprocesses for ``crawjud_app``; each is stopped afterwards.

    Keyword arguments go to :class:`WorkerProcess` (``pool``, ``concurrency``, ``queues``,
    ``app_spec``, ``env``...). The worker always gets ``crawjud_settings`` (as ``CRAWJUD_TASKS_*``
    variables), with an ``app_spec`` too: a host's app made by ``create_app()`` reaches the
    test's Redis and data folder, never the developer's.
    """
    workers: list[WorkerProcess] = []

    def start(**options: Any) -> WorkerProcess:
        options.setdefault("settings", crawjud_settings)
        worker = WorkerProcess(crawjud_app, **options)
        workers.append(worker)
        return worker.start()

    yield start
    for worker in workers:
        worker.stop()
        worker.log_path.unlink(missing_ok=True)
