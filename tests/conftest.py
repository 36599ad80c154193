"""Fixtures of the crawjud-tasks test suite; plain helpers are in ``tests/helpers.py``.

The fixtures that start real Redis servers and workers come from the library's own pytest plugin
(``crawjud_tasks.testing``), the same one host applications use.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from celery import Celery

from crawjud_tasks import Settings, create_app
from crawjud_tasks.testing import RedisServer, WorkerProcess, close_app, settings_for
from tests.helpers import LOG_KEY, ROOT, python_path

#: The loopback SMTP server fixture ``smtp``.
pytest_plugins = ["tests.smtp_server"]

#: Fixtures that start a process or a server (beyond the session's one redis-server): a test that
#: uses one, directly or through another fixture, is marked ``slow`` when collected, so that
#: ``pytest -m "not slow"`` is the fast loop. A fixture that starts one belongs here; a test that
#: starts one in its own body carries ``@pytest.mark.slow`` itself.
SLOW_FIXTURES = frozenset(
    {
        # crawjud_tasks.testing: a worker thread, worker subprocesses
        "crawjud_worker",
        "crawjud_worker_process",
        # here: the worker subprocess of the example contracts
        "worker",
        # tests/smtp_server.py: an aiosmtpd server
        "smtp",
        # test modules
        "cli_worker",  # test_cli_runs: a bot worker subprocess
        "embedded",  # test_embedded: an embedded redis-server
        "mail_app",  # test_mail_send: a worker thread
        "mailbox",  # test_bots_notify: an aiosmtpd server
        "make_rig",  # test_faults: a redis-server and worker subprocesses
        "mypy_diagnostics",  # test_typing: a mypy subprocess
        "notify_worker",  # test_bots_notify: a bot worker subprocess
        "own_redis",  # test_lease: a redis-server
        "plain_worker",  # test_cnj: a worker subprocess
        "pyright_diagnostics",  # test_typing: a pyright subprocess
        "rig",  # test_mail_kill: a redis-server, an aiosmtpd server, worker subprocesses
        "runs_worker",  # test_bots_run: a bot worker subprocess
        "silent_server",  # test_broker_unavailable: a TCP server that never answers
        "smtp_server",  # test_mail_transport: aiosmtpd servers
    }
)


@pytest.hookimpl(tryfirst=True)  # before -m "not slow" deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark ``slow`` every test whose fixtures start a process or a server (``SLOW_FIXTURES``)."""
    for item in items:
        if SLOW_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No CRAWJUD_TASKS_* variable from the developer's shell leaks into a test."""
    for name in list(os.environ):
        if name.startswith("CRAWJUD_TASKS_"):
            monkeypatch.delenv(name)


@pytest.fixture
def make_app() -> Iterator[Callable[..., Celery]]:
    """``create_app`` (or a plain Celery app with ``plain=True``), each closed after the test."""
    apps: list[Celery] = []

    def make(
        config: Settings | dict[str, Any] | None = None, *, plain: bool = False, **celery: Any
    ) -> Celery:
        app = Celery("host", set_as_current=False, **celery) if plain else create_app(config)
        apps.append(app)
        return app

    yield make
    for app in apps:
        close_app(app)


# -- the example contracts: a host app without implementations, a worker process with them --


@pytest.fixture(scope="module")
def host_settings(
    crawjud_redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    client = crawjud_redis_server.client()
    try:
        client.flushall()
    finally:
        client.close()
    return settings_for(crawjud_redis_server, tmp_path_factory.mktemp("ex"), namespace="ex")


@pytest.fixture(scope="module")
def host(host_settings: Settings) -> Iterator[Celery]:
    """The host service's app: it has none of the example implementations."""
    app = create_app(host_settings)
    yield app
    close_app(app)


@pytest.fixture(scope="module")
def worker(
    host: Celery, host_settings: Settings, crawjud_redis_server: RedisServer
) -> Iterator[WorkerProcess]:
    """A worker subprocess whose app implements the example contracts."""
    env = {
        **host_settings.to_env(),
        "EXAMPLES_REDIS_URL": crawjud_redis_server.url_for(2),
        "EXAMPLES_LOG_KEY": LOG_KEY,
        "PYTHONPATH": python_path(str(ROOT)),
    }
    process = WorkerProcess(host, app_spec="tests.examples.worker:app", env=env, loglevel="INFO")
    process.start()
    yield process
    process.stop()
    process.log_path.unlink(missing_ok=True)


@pytest.fixture
def log(crawjud_redis_server: RedisServer, worker: WorkerProcess) -> Iterator[redis.Redis]:
    """The list where the worker notes side effects, emptied before the test."""
    client = crawjud_redis_server.client(2)
    client.delete(LOG_KEY)
    yield client
    client.close()
