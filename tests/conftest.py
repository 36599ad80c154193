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
from celery import Celery

import crawjud_tasks
from crawjud_tasks import Settings, create_app
from crawjud_tasks._app import close_app


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
