"""The bots the library ships, registered on every app (``register_bots`` calls this).

Their keys (``cnj.*``) are taken on every app: a host's bot needs another key.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from crawjud_tasks.bots._registry import register_bot
from crawjud_tasks.bots.cnj import ValidarCnj

if TYPE_CHECKING:
    from celery import Celery

__all__ = ["register_builtin_bots"]


def register_builtin_bots(app: Celery) -> None:
    """Register the built-in bots on ``app``: ``cnj.validar``."""
    register_bot(app, "cnj.validar", ValidarCnj)
