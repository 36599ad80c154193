"""The schedules domain's registrar: what a worker and beat of an app need."""

from __future__ import annotations

from typing import TYPE_CHECKING

from crawjud_tasks.schedules._outcomes import connect_outcomes

if TYPE_CHECKING:
    from celery import Celery

    from crawjud_tasks._state import AppState

__all__ = ["register"]


def register(app: Celery, state: AppState) -> None:
    """Record the end of scheduled runs on ``app``'s workers (frees their run lease, counts
    outcomes, pauses after repeated failures)."""
    del app, state  # the recorder reads each task's own app
    connect_outcomes()
