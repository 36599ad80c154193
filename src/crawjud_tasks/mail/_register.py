"""The mail domain's registrar: what ``create_app`` and ``install`` put on an app for mail."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from crawjud_tasks._dispatch import visibility_timeout
from crawjud_tasks.mail._send import send_messages, smtp_policy
from crawjud_tasks.mail.contracts import EmailMessage, EmailReceipt, send_bulk, send_email

if TYPE_CHECKING:
    from celery import Celery

    from crawjud_tasks._state import AppState

__all__ = ["register"]


def register(app: Celery, state: AppState) -> None:
    """Bind the mail contracts' implementations on ``app`` (SMTP retry policy, time limits)."""
    policy = smtp_policy(visibility_timeout(app))
    hard = state.settings.mail.task_time_limit
    limits: dict[str, Any] = {"retry": policy, "time_limit": hard, "soft_time_limit": hard * 0.9}

    @send_email.implement_bound(app, **limits)
    def _send_email(task: Any, message: EmailMessage) -> EmailReceipt:
        return send_messages(app, [message], str(task.request.id))[0]

    @send_bulk.implement_bound(app, **limits)
    def _send_bulk(task: Any, messages: list[EmailMessage]) -> list[EmailReceipt]:
        return send_messages(app, messages, str(task.request.id))
