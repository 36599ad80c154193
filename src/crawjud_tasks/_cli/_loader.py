"""The app a command works on: ``--app module:attr``, or ``create_app()`` from the environment."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import TypeGuard

import click
from celery import Celery

from crawjud_tasks import create_app
from crawjud_tasks.errors import CrawjudTasksError

__all__ = ["APP_HELP", "fail", "load_app"]

APP_HELP = (
    "The Celery app to use, as 'module:attribute' (an app, or a function returning one). "
    "Default: create_app() with the CRAWJUD_TASKS_* environment."
)


def fail(message: str) -> click.ClickException:
    """A one-line CLI error."""
    return click.ClickException(message)


def load_app(ctx: click.Context) -> Celery:
    """The app named by ``--app``, or the default app; errors become one-line CLI errors."""
    spec: str | None = ctx.find_root().obj
    try:
        if spec is None:
            return create_app()
        return _import_app(spec)
    except CrawjudTasksError as exc:
        raise fail(str(exc)) from exc


def _import_app(spec: str) -> Celery:
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        msg = f"--app takes 'module:attribute' (for example 'host.tasks:app'), got {spec!r}"
        raise fail(msg)
    cwd = str(Path.cwd())
    if cwd not in sys.path:
        sys.path.insert(0, cwd)  # like `celery -A`, find modules of the current folder
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        msg = f"--app {spec}: cannot import {module_name!r} ({exc})"
        raise fail(msg) from exc
    try:
        target = getattr(module, attr)
    except AttributeError as exc:
        msg = f"--app {spec}: module {module_name!r} has no attribute {attr!r}"
        raise fail(msg) from exc
    if not _is_app(target) and callable(target):
        target = target()
    if not _is_app(target):
        kind = type(target).__name__
        msg = f"--app {spec} is a {kind}, not a Celery app (or a function returning one)"
        raise fail(msg)
    return target


def _is_app(value: object) -> TypeGuard[Celery]:
    """``isinstance(value, Celery)``; a bare ``isinstance`` leaves the app's task type unknown."""
    return isinstance(value, Celery)
