"""Which settings each app was built with (kept beside the app, never on a global proxy)."""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING

from crawjud_tasks.errors import CrawjudTasksError

if TYPE_CHECKING:
    from celery import Celery

    from crawjud_tasks._settings import Settings

__all__ = ["app_settings", "default_app", "forget_app", "has_settings", "remember_settings"]

_SETTINGS: weakref.WeakKeyDictionary[Celery, Settings] = weakref.WeakKeyDictionary()
#: Apps built by create_app or install and not closed yet: the candidates for default_app().
_OPEN: weakref.WeakSet[Celery] = weakref.WeakSet()


def remember_settings(app: Celery, settings: Settings) -> None:
    """Record ``settings`` as the settings of ``app``."""
    _SETTINGS[app] = settings
    _OPEN.add(app)


def forget_app(app: Celery) -> None:
    """``app`` was closed: it is no longer a candidate for :func:`default_app`."""
    _OPEN.discard(app)


def has_settings(app: Celery) -> bool:
    """Whether ``app`` was built by ``create_app`` or passed to ``install``."""
    return app in _SETTINGS


def default_app() -> Celery:
    """The one open app of this process, used by contracts dispatched without ``.using(app)``.

    Raises:
        CrawjudTasksError: there is no open app, or more than one.
    """
    if len(_OPEN) == 1:
        for app in _OPEN:
            return app
    if not _OPEN:
        msg = "no crawjud-tasks app in this process: call create_app() or install() first"
    else:
        msg = (
            f"{len(_OPEN)} crawjud-tasks apps are open in this process; "
            "say which one with contract.using(app)"
        )
    raise CrawjudTasksError(msg)


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
