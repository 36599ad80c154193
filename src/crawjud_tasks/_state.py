"""The per-app state: one object per app, behind one lock, reached by :func:`app_state`.

Everything crawjud-tasks keeps about an app lives here, beside the app and never on a global
proxy: the settings it was built with, its key table, its Redis link, and one state object per
domain (the bots registry, secret providers, report store ...), made on first use by
:meth:`AppState.domain`. stamina's ``_config.py`` is the model.
"""

from __future__ import annotations

import threading
import uuid
import weakref
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, TypeVar

from crawjud_tasks._keys import Keys
from crawjud_tasks._redis import RedisLink
from crawjud_tasks.errors import CrawjudTasksError

if TYPE_CHECKING:
    from collections.abc import Callable

    import redis
    from celery import Celery

    from crawjud_tasks._settings import Settings

__all__ = [
    "APP_OPTION",
    "AppState",
    "app_settings",
    "app_state",
    "close_state",
    "default_app",
    "has_state",
    "new_state",
    "state_for_ident",
]

T = TypeVar("T")
#: The broker transport option that carries an app's :attr:`AppState.ident`.
APP_OPTION = "crawjud_app"

_STATES: weakref.WeakKeyDictionary[Celery, AppState] = weakref.WeakKeyDictionary()
#: Apps built by create_app or install and not closed yet: the candidates for default_app().
_OPEN: weakref.WeakSet[Celery] = weakref.WeakSet()
#: Guards the two tables above.
_TABLE_LOCK = threading.Lock()


class AppState:
    """What crawjud-tasks keeps about one app."""

    __slots__ = ("_domains", "_link", "ident", "keys", "lock", "settings")

    def __init__(self, app: Celery, settings: Settings) -> None:
        #: The settings ``create_app`` or ``install`` used.
        self.settings = settings
        #: The app's Redis key table.
        self.keys = Keys(settings.key_prefix)
        #: Names this state in configuration that holds only text (the broker transport's
        #: options): :func:`state_for_ident` finds it again.
        self.ident = uuid.uuid4().hex
        #: The one lock of the app's state: domains guard their registries with it.
        self.lock = threading.RLock()
        self._link = RedisLink(
            app.conf, settings.broker_connection_timeout, self.lock, settings.tls
        )
        self._domains: dict[object, Any] = {}

    def __repr__(self) -> str:
        return f"<AppState namespace={self.settings.namespace!r}>"

    @property
    def redis(self) -> redis.Redis:
        """The library's own redis-py client (``bytes`` replies), made on first use.

        Raises:
            CrawjudTasksError: neither the result backend nor the broker is a Redis that redis-py
                can open.
        """
        return self._link.client

    @property
    def link(self) -> RedisLink:
        """The app's Redis link: its URL, the broker client, error translation."""
        return self._link

    def redis_errors(self) -> AbstractContextManager[None]:
        """A context manager turning redis-py's errors into the library's (see
        :meth:`RedisLink.errors`)."""
        return self._link.errors()

    def domain(self, cls: Callable[[AppState], T]) -> T:
        """The state object ``cls(self)`` of a domain, made once per app under the lock."""
        found = self._domains.get(cls)  # read without the lock: made once, never replaced
        if found is None:
            with self.lock:
                found = self._domains.get(cls)
                if found is None:
                    found = self._domains[cls] = cls(self)
        result: T = found
        return result

    def close(self) -> None:
        """Close each domain's state that has a ``close()`` (a flush thread, say), then the
        Redis clients made so far (the next use makes new ones)."""
        with self.lock:
            domains = list(self._domains.values())
        for domain in domains:
            close = getattr(domain, "close", None)
            if callable(close):
                close()
        self._link.close()


def new_state(app: Celery, settings: Settings) -> AppState:
    """Give ``app`` its state, built from ``settings``, and count it among the open apps."""
    state = AppState(app, settings)
    with _TABLE_LOCK:
        _STATES[app] = state
        _OPEN.add(app)
    return state


def app_state(app: Celery) -> AppState:
    """The state crawjud-tasks keeps for ``app``.

    Raises:
        CrawjudTasksError: ``app`` was not made by ``create_app`` nor passed to ``install``.
    """
    try:
        return _STATES[app]
    except KeyError:
        msg = (
            "this Celery app has no crawjud-tasks settings; build it with create_app() or install()"
        )
        raise CrawjudTasksError(msg) from None


def app_settings(app: Celery) -> Settings:
    """The settings that :func:`create_app` or :func:`install` used for ``app``.

    Raises:
        CrawjudTasksError: ``app`` was not made by ``create_app`` nor passed to ``install``.
    """
    return app_state(app).settings


def state_for_ident(ident: str) -> AppState | None:
    """The state of an open app whose :attr:`AppState.ident` is ``ident``, if there is one."""
    with _TABLE_LOCK:
        states = list(_STATES.values())
    return next((state for state in states if state.ident == ident), None)


def has_state(app: Celery) -> bool:
    """Whether ``app`` was built by ``create_app`` or passed to ``install``."""
    return app in _STATES


def close_state(app: Celery) -> None:
    """``app`` was closed: close its Redis clients; it is no longer a default app candidate."""
    with _TABLE_LOCK:
        _OPEN.discard(app)
        state = _STATES.get(app)
    if state is not None:
        state.close()


def default_app() -> Celery:
    """The one open app of this process, used by contracts dispatched without ``.using(app)``.

    Raises:
        CrawjudTasksError: there is no open app, or more than one.
    """
    with _TABLE_LOCK:
        candidates = list(_OPEN)
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        msg = "no crawjud-tasks app in this process: call create_app() or install() first"
    else:
        msg = (
            f"{len(candidates)} crawjud-tasks apps are open in this process; "
            "say which one with contract.using(app)"
        )
    raise CrawjudTasksError(msg)
