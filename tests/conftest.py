"""Shared helpers of the crawjud-tasks test suite.

The fixtures that start real Redis servers and workers come from the library's own pytest plugin
(``crawjud_tasks.testing``), the same one host applications use.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery

import crawjud_tasks
from crawjud_tasks import Settings, create_app
from crawjud_tasks._app import close_app
from crawjud_tasks.testing import RedisServer, WorkerProcess, settings_for

#: The loopback SMTP server fixture ``smtp``.
pytest_plugins = ["tests.smtp_server"]


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60.0
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m crawjud_tasks ARGS`` as a real subprocess; output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "crawjud_tasks", *args],
        env=cli_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def cli_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment without CRAWJUD_TASKS_* variables, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRAWJUD_TASKS_")}
    env.update(extra or {})
    return env


def run_python(
    code: str, env: dict[str, str] | None = None, timeout: float = 60.0
) -> subprocess.CompletedProcess[str]:
    """Run ``python -c CODE`` with :func:`python_env`; output captured as text."""
    return subprocess.run(
        [sys.executable, "-c", code],
        env=python_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def python_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """:func:`cli_env` whose ``PYTHONPATH`` starts with the crawjud_tasks this test imported."""
    env = cli_env(extra)
    source = str(Path(crawjud_tasks.__file__).parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (source, env.get("PYTHONPATH")) if p)
    return env


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

ROOT = Path(__file__).resolve().parent.parent
LOG_KEY = "examples:log"


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
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
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


# -- the test bots: settings with an inputs folder, worker processes that run them ---------------


def bot_settings(
    server: RedisServer, tmp_path_factory: pytest.TempPathFactory, namespace: str, **changes: Any
) -> Settings:
    """Settings on an emptied ``server`` whose bots read inputs from ``<data>/inputs``."""
    client = server.client()
    try:
        client.flushall()
    finally:
        client.close()
    data = tmp_path_factory.mktemp(namespace)
    (data / "inputs").mkdir()
    changes.setdefault("bots", {})["allowed_roots"] = [str(data / "inputs")]
    return settings_for(server, data, namespace=namespace, **changes)


def bot_worker(
    host: Celery,
    settings: Settings,
    server: RedisServer,
    *,
    pool: str = "prefork",
    concurrency: int = 2,
    env: dict[str, str] | None = None,
) -> WorkerProcess:
    """A worker process (not started) running the test bots of ``tests/examples/bots.py``."""
    return WorkerProcess(
        host,
        app_spec="tests.examples.bot_worker:app",
        env={
            **settings.to_env(),
            "BOT_LEDGER_URL": server.url_for(2),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
            **(env or {}),
        },
        pool=pool,
        concurrency=concurrency,
        loglevel="INFO",
    )


def entries(client: redis.Redis) -> list[str]:
    raw: list[bytes] = client.lrange(LOG_KEY, 0, -1)  # type: ignore[assignment]  # redis-py types replies as sync-or-async
    return [entry.decode() for entry in raw]
