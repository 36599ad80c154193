"""The bots domain's registrar: what ``create_app`` and ``install`` put on an app for bots."""

from __future__ import annotations

from typing import TYPE_CHECKING

from crawjud_tasks.bots._builtin import register_builtin_bots
from crawjud_tasks.bots._notify import register_notification_errback
from crawjud_tasks.bots._runner import implement_run_contracts

if TYPE_CHECKING:
    from celery import Celery

    from crawjud_tasks._state import AppState

__all__ = ["register"]


def register(app: Celery, state: AppState) -> None:
    """Bind the bot-run contracts' implementations on ``app``, and the built-in bots."""
    register_builtin_bots(app)
    register_notification_errback(app)
    implement_run_contracts(app)
