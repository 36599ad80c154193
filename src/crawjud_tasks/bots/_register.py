"""The bots domain's registrar: what ``create_app`` and ``install`` put on an app for bots."""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from celery.signals import worker_ready

from crawjud_tasks.bots._builtin import register_builtin_bots
from crawjud_tasks.bots._notify import notification_not_sent
from crawjud_tasks.bots._reaper import reap
from crawjud_tasks.bots._runner import implement_run_contracts
from crawjud_tasks.bots.contracts import notification_failed, reap_runs

if TYPE_CHECKING:
    from celery import Celery

    from crawjud_tasks._state import AppState

__all__ = ["register"]

_LOG = logging.getLogger("crawjud_tasks.bots")


def register(app: Celery, state: AppState) -> None:
    """Bind the bot-run contracts', the notification errback's and the reaper's implementations
    on ``app``, and the built-in bots; a worker of ``app`` reaps abandoned runs as it starts."""
    register_builtin_bots(app)
    implement_run_contracts(app)

    @notification_failed.implement(app)
    def _notification_failed(task_id: str, run_id: str, template: str) -> None:
        notification_not_sent(app, task_id, run_id, template)

    @reap_runs.implement(app)
    def _reap_runs() -> list[str]:
        return reap(app)

    def reap_at_start(sender: Any = None, **_: Any) -> None:
        if getattr(sender, "app", None) is app:
            threading.Thread(
                target=_reap_quietly, args=(app,), name="crawjud-reap-runs", daemon=True
            ).start()

    worker_ready.connect(reap_at_start, weak=False, dispatch_uid=f"crawjud-reap-runs:{id(app)}")


def _reap_quietly(app: Celery) -> None:
    try:
        reap(app)
    except Exception as exc:
        _LOG.warning("abandoned runs were not looked for at start: %s", exc)
