"""Which bots a worker knows: by decorator, by an explicit call on the app, or by entry point.

A bot is registered under a key (``projudi.capa``: dotted lower-case words) as a factory, a class
as a rule: every run makes its own instance. A key is looked up on the app first (explicit
registrations), then among the decorated bots, then in the entry-point group
``crawjud_tasks.bots`` of the installed distributions (``projudi.capa = "host.bots:Capa"``).
"""

from __future__ import annotations

import difflib
import re
import threading
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, TypeVar

from crawjud_tasks._state import app_state
from crawjud_tasks.bots._per_app import BotsState
from crawjud_tasks.errors import ContractError, UnknownBotError

if TYPE_CHECKING:
    from celery import Celery

    from crawjud_tasks.bots._bot import Bot

__all__ = ["ENTRY_POINT_GROUP", "BotFactory", "bot", "find_bot", "known_bots", "register_bot"]

#: The entry-point group where installed distributions declare bots.
ENTRY_POINT_GROUP = "crawjud_tasks.bots"
#: What a key maps to: a callable that makes a fresh bot for each run (a class, usually).
BotFactory = Callable[[], "Bot[Any]"]
F = TypeVar("F", bound=Callable[[], Any])

_KEY = re.compile(r"[a-z][a-z0-9_]*(\.[a-z0-9_]+)+")
_DECORATED: dict[str, BotFactory] = {}
#: Guards the decorated bots (a process-wide table: the decorator knows no app).
_LOCK = threading.Lock()


def bot(key: str) -> Callable[[F], F]:
    """Register the decorated bot class under ``key`` for every app of this process.

    Example::

        @bot("projudi.capa")
        class Capa(BaseBot[CapaOptions]):
            def process(self, item: Item, ctx: RunContext[CapaOptions]) -> ItemOutcome: ...

    Raises:
        ContractError: the key is not dotted lower-case words, or another bot has it.
    """
    _check_key(key)

    def register(factory: F) -> F:
        with _LOCK:
            _claim(_DECORATED, key, factory)
        return factory

    return register


def register_bot(app: Celery, key: str, factory: BotFactory) -> None:
    """Register ``factory`` (a bot class) under ``key`` on ``app`` only.

    Raises:
        ContractError: the key is not dotted lower-case words, ``factory`` is not callable, or
            another bot has the key on this app.
    """
    _check_key(key)
    given: object = factory
    if not callable(given):
        msg = (
            f"register_bot({key!r}, ...) needs a bot class (or a callable making one), "
            f"got {given!r}"
        )
        raise ContractError(msg)
    state = app_state(app)
    with state.lock:
        _claim(state.domain(BotsState).bots, key, factory)


def find_bot(app: Celery, key: str) -> BotFactory:
    """The factory registered under ``key``: on ``app``, decorated, or by entry point.

    Raises:
        UnknownBotError: no bot has the key (the message lists the known keys).
    """
    factory = app_state(app).domain(BotsState).bots.get(key) or _DECORATED.get(key)
    if factory is not None:
        return factory
    for point in entry_points(group=ENTRY_POINT_GROUP):
        if point.name == key:
            loaded: BotFactory = point.load()
            return loaded
    known = known_bots(app)
    close = difflib.get_close_matches(key, known, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    listing = ", ".join(known) if known else "none"
    msg = (
        f"no bot is registered under {key!r}; {hint}known bots: {listing} "
        "(register one with @bot(key), register_bot(app, key, cls) or the "
        f"{ENTRY_POINT_GROUP!r} entry points, in the worker's process)"
    )
    raise UnknownBotError(msg)


def known_bots(app: Celery) -> list[str]:
    """Every key a run on ``app`` can name, sorted."""
    keys = set(app_state(app).domain(BotsState).bots) | set(_DECORATED)
    keys.update(point.name for point in entry_points(group=ENTRY_POINT_GROUP))
    return sorted(keys)


def _check_key(key: Any) -> None:
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        msg = (
            "a bot key is dotted lower-case words like 'projudi.capa' (court system, then "
            f"task), got {key!r}"
        )
        raise ContractError(msg)


def _claim(table: dict[str, BotFactory], key: str, factory: BotFactory) -> None:
    previous = table.get(key)
    if previous is not None and _origin(previous) != _origin(factory):
        msg = (
            f"the bot key {key!r} is taken by {_origin(previous)}; "
            f"give {_origin(factory)} another key"
        )
        raise ContractError(msg)
    table[key] = factory


def _origin(factory: Callable[..., Any]) -> str:
    module = getattr(factory, "__module__", "?")
    return f"{module}.{getattr(factory, '__qualname__', repr(factory))}"
