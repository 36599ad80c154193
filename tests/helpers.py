"""Shared helpers of the crawjud-tasks test suite (plain functions and constants, no fixtures).

Fixtures live in ``tests/conftest.py`` and in the library's own pytest plugin
(``crawjud_tasks.testing``, the one host applications use, which also has ``wait_for``); test
modules import what they need from here, never from ``conftest``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery

import crawjud_tasks
from crawjud_tasks import Settings
from crawjud_tasks.testing import RedisServer, WorkerProcess, settings_for

__all__ = [
    "LOG_KEY",
    "RESTORE_EVERY_SECOND",
    "ROOT",
    "bot_settings",
    "bot_worker",
    "cli_env",
    "entries",
    "python_env",
    "python_path",
    "run_cli",
    "run_python",
]

#: The repository's root: worker subprocesses import ``tests.examples`` from there.
ROOT = Path(__file__).resolve().parent.parent
#: The Redis list (database 2) where the example implementations note their side effects.
LOG_KEY = "examples:log"
#: kombu's Redis transport sweeps for expired unacknowledged messages every
#: ``unacked_restore_interval`` seconds, scanning on every ``unacked_restore_throttle``-th call
#: (defaults 10 and 10: every 100 s). Every second here.
RESTORE_EVERY_SECOND = {"unacked_restore_interval": 1, "unacked_restore_throttle": 1}


# -- subprocesses: the CLI and plain Python, with a clean environment ----------------------------


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


def python_path(*folders: str) -> str:
    """A ``PYTHONPATH`` of ``folders`` followed by this process's own ``PYTHONPATH``, if any."""
    return os.pathsep.join(filter(None, [*folders, os.environ.get("PYTHONPATH")]))


# -- the example contracts: the list where their worker notes side effects ----------------------


def entries(client: redis.Redis) -> list[str]:
    """The side effects the example implementations noted, oldest first."""
    raw: list[bytes] = client.lrange(LOG_KEY, 0, -1)  # type: ignore[assignment]  # redis-py types replies as sync-or-async
    return [entry.decode() for entry in raw]


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
            "PYTHONPATH": python_path(str(ROOT)),
            **(env or {}),
        },
        pool=pool,
        concurrency=concurrency,
        loglevel="INFO",
    )
