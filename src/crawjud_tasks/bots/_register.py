"""The bots domain's registrar: what ``create_app`` and ``install`` put on an app for bots."""

from __future__ import annotations

from typing import TYPE_CHECKING

from crawjud_tasks.bots._builtin import register_builtin_bots
from crawjud_tasks.bots._notify import notification_not_sent
from crawjud_tasks.bots._runner import implement_run_contracts
from crawjud_tasks.bots.contracts import notification_failed

if TYPE_CHECKING:
    from celery import Celery

    from crawjud_tasks._state import AppState

__all__ = ["register"]


def register(app: Celery, state: AppState) -> None:
    """Bind the bot-run contracts' and the notification errback's implementations on ``app``,
    and the built-in bots."""
    register_builtin_bots(app)
    implement_run_contracts(app)

    @notification_failed.implement(app)
    def _notification_failed(task_id: str, run_id: str, template: str) -> None:
        notification_not_sent(app, task_id, run_id, template)
