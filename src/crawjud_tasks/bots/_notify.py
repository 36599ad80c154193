"""A run's notifications: ``bot_started``, then ``bot_finished``, ``bot_failed`` or
``bot_cancelled``, sent to the run's recipients through the mail contract, in the run's locale
(times and durations go as data; the templates format them with mail's filters).

A notification is dispatched, never awaited: the run goes on while the mail worker sends it. A
dispatch that fails is recorded in the run's events at once; a send that fails in the end (after
the mail task's own retries) is recorded there by the contract ``notification_failed``, the
error callback the mail worker sends to the bots queue. A failed notification never changes the
run's outcome. Each message's idempotency key is ``<run id>:<template>``, so a resumed run never
notifies twice.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crawjud_tasks._state import app_state
from crawjud_tasks.bots._store import RunStore
from crawjud_tasks.bots.contracts import (
    BotParameters,
    BotRunResult,
    RunStatus,
    notification_failed,
)
from crawjud_tasks.mail.contracts import Attachment, EmailMessage, send_email

if TYPE_CHECKING:
    from celery import Celery

    from crawjud_tasks.bots._context import LogLevel

__all__ = ["notification_not_sent", "notify_finished", "notify_started"]

_LOG = logging.getLogger("crawjud_tasks.bots")
#: Seconds the error callback waits for the failed mail task's stored error.
_ERROR_WAIT = 5.0
#: The largest report attached to a notification; a larger one is only named.
MAX_ATTACHED_REPORT = 10 * 1024 * 1024
_TEMPLATE_OF = {
    RunStatus.COMPLETED: "bot_finished",
    RunStatus.COMPLETED_WITH_ERRORS: "bot_finished",
    RunStatus.FAILED: "bot_failed",
    RunStatus.CANCELLED: "bot_cancelled",
}


def notification_not_sent(app: Celery, task_id: str, run_id: str, template: str) -> None:
    """Record in the run's events why the mail task ``task_id`` (its ``template``
    notification) failed in the end: the implementation of ``notification_failed``."""
    try:
        send_email.using(app).result(task_id).get(timeout=_ERROR_WAIT)
    except Exception as exc:
        reason = f": {_short(exc)}"
    else:  # (an error callback of a task that did not fail: nothing to say why)
        reason = f" (task {task_id})"
    _record(app, run_id, "error", f"the {template} notification was not sent{reason}")


def notify_started(
    app: Celery,
    *,
    run_id: str,
    bot: str,
    title: str,
    parameters: BotParameters,
    total: int,
    started_at: dt.datetime,
    user_id: int | str,
) -> None:
    """Send ``bot_started`` to the run's recipients (if any)."""
    context = {
        "user_name": parameters.user_name or str(user_id),
        "bot_name": title or bot,
        "run_id": run_id,
        "started_at": started_at.isoformat(),
        "input_file": _input_name(parameters),
        "total": total,
        "logs_url": _url(app_state(app).settings.bots.logs_url, run_id),
    }
    _send(
        app,
        run_id=run_id,
        parameters=parameters,
        template="bot_started",
        context=context,
        attachments=[],
    )


def notify_finished(
    app: Celery,
    result: BotRunResult,
    *,
    title: str,
    parameters: BotParameters,
    cancelled_by: str | None,
) -> None:
    """Send the notification of how the run ended to the run's recipients (if any)."""
    template = _TEMPLATE_OF[result.status]
    counts = result.counts
    context: dict[str, Any] = {
        "user_name": parameters.user_name or str(result.user_id),
        "bot_name": title or result.bot,
        "run_id": result.run_id,
        "total": counts.total,
    }
    attachments: list[Attachment] = []
    when = result.finished_at.isoformat()
    if template == "bot_finished":
        context |= {
            "finished_at": when,
            "duration": result.seconds,
            "successes": counts.succeeded,
            "failures": counts.failed,
        }
        report_url = _report_url(app, result)
        if report_url:
            context["report_url"] = report_url
        elif result.report and _attachable(result.report):
            attachments.append(Attachment(path=result.report))
    elif template == "bot_failed":
        context |= {
            "failed_at": when,
            "error_summary": result.error or "",
            "items_done": counts.done,
            "logs_url": _url(app_state(app).settings.bots.logs_url, result.run_id),
        }
    else:
        context |= {
            "cancelled_at": when,
            "cancelled_by": cancelled_by or "—",
            "items_done": counts.done,
        }
    _send(
        app,
        run_id=result.run_id,
        parameters=parameters,
        template=template,
        context=context,
        attachments=attachments,
    )


def _send(
    app: Celery,
    *,
    run_id: str,
    parameters: BotParameters,
    template: str,
    context: dict[str, Any],
    attachments: list[Attachment],
) -> None:
    if not parameters.notify:
        return
    message = EmailMessage(
        to=list(parameters.notify),
        template=template,
        context=context,
        locale=parameters.locale,
        attachments=attachments,
        idempotency_key=f"{run_id}:{template}",
    )
    errback = notification_failed.using(app).s(run_id=run_id, template=template)
    try:
        handle = send_email.using(app).s(message).apply_async(on_error=errback)
    except Exception as exc:
        _record(app, run_id, "error", f"the {template} notification was not sent: {_short(exc)}")
        return
    recipients = len(parameters.notify)
    _record(
        app,
        run_id,
        "info",
        f"{template} notification queued for {recipients} recipient(s) (task {handle.id})",
    )


def _record(app: Celery, run_id: str, level: LogLevel, message: str) -> None:
    """Append a log line to the run's events; a Redis error is only logged."""
    try:
        RunStore(app, run_id).log_now(level, message)
    except Exception as exc:
        _LOG.warning("run %s: %s (not recorded in its events: %s)", run_id, message, exc)
        return
    _LOG.log(logging.WARNING if level == "error" else logging.INFO, "run %s: %s", run_id, message)


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _url(pattern: str | None, run_id: str) -> str:
    return "" if not pattern else pattern.replace("{run_id}", run_id)


def _report_url(app: Celery, result: BotRunResult) -> str:
    if result.report and result.report.startswith(("https://", "http://")):
        return result.report
    return _url(app_state(app).settings.bots.report_url, result.run_id)


def _attachable(path: str) -> bool:
    try:
        return Path(path).stat().st_size <= MAX_ATTACHED_REPORT
    except OSError:
        return False


def _input_name(parameters: BotParameters) -> str:
    source = parameters.input
    if source.file is not None:
        return Path(source.file).name
    return (
        f"{len(source.rows)} linhas" if parameters.locale == "pt_BR" else f"{len(source.rows)} rows"
    )
