"""What to tell a host whose broker did not answer: which broker that is, and how to set one."""

from __future__ import annotations

from typing import TYPE_CHECKING

from crawjud_tasks._redact import redact_url

if TYPE_CHECKING:
    from celery import Celery

__all__ = ["broker_unanswered"]


def broker_unanswered(app: Celery, exc: BaseException) -> str:
    """One line: the broker ``app`` tried (Celery's default when ``broker_url`` is unset), what
    failed, and how to point the app at Redis or at the embedded Redis."""
    configured = app.conf.broker_url
    if configured:
        return (
            f"the broker at {redact_url(str(configured))} did not answer ({exc}); start it or "
            "check the broker URL"
        )
    # Celery's default when nothing is set: AMQP on localhost (what the app really tried).
    default = redact_url(app.connection_for_write().as_uri())
    return (
        f"the app has no broker_url, so Celery tried its default broker {default}, which did not "
        f"answer ({exc}); set the app's broker_url to your Redis (redis://host:6379/0), or to "
        "the embedded Redis: embedded = EmbeddedRedis(data_dir); embedded.start(); "
        "broker_url=embedded.url(0), result_backend=embedded.url(1)"
    )
