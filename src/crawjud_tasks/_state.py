"""Which settings each app was built with (kept beside the app, never on a global proxy)."""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING

from crawjud_tasks.errors import CrawjudTasksError

if TYPE_CHECKING:
    from celery import Celery

    from crawjud_tasks._settings import Settings

__all__ = ["app_settings", "has_settings", "remember_settings"]

_SETTINGS: weakref.WeakKeyDictionary[Celery, Settings] = weakref.WeakKeyDictionary()


def remember_settings(app: Celery, settings: Settings) -> None:
    """Record ``settings`` as the settings of ``app``."""
    _SETTINGS[app] = settings


def has_settings(app: Celery) -> bool:
    """Whether ``app`` was built by ``create_app`` or passed to ``install``."""
    return app in _SETTINGS


def app_settings(app: Celery) -> Settings:
    """The settings that :func:`create_app` or :func:`install` used for ``app``.

    Raises:
        CrawjudTasksError: ``app`` was not made by ``create_app`` nor passed to ``install``.
    """
    try:
        return _SETTINGS[app]
    except KeyError:
        msg = (
            "this Celery app has no crawjud-tasks settings; build it with create_app() or install()"
        )
        raise CrawjudTasksError(msg) from None
