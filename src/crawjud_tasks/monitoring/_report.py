"""``periodic_report``: the task stats of the last period, mailed with the ``periodic_report``
template (through ``mail.send_email``, once per recipients and minute)."""

from __future__ import annotations

import datetime as dt
import hashlib
import time
import zoneinfo
from typing import TYPE_CHECKING

from crawjud_tasks._state import app_state
from crawjud_tasks.errors import SettingsError
from crawjud_tasks.mail.contracts import EmailMessage, send_email
from crawjud_tasks.monitoring._stats import Stats, stats
from crawjud_tasks.monitoring.contracts import PeriodicReport, ReportRow

if TYPE_CHECKING:
    from celery import Celery

__all__ = ["MAX_TASK_ROWS", "periodic_report", "report_rows"]

#: Tasks listed one per row (the busiest); the totals count them all.
MAX_TASK_ROWS = 20
_LABELS = {
    "en": {
        "finished": "Tasks finished",
        "succeeded": "Succeeded",
        "failed": "Failed",
        "retried": "Retried",
        "success": "Success ratio",
        "waiting": "Messages waiting now",
        "workers": "Workers now",
        "poison": "Poison messages dropped",
        "task": "{name} ({queue})",
        "task_value": "{succeeded} ok, {failed} failed, p95 {p95}",
    },
    "pt_BR": {
        "finished": "Tarefas concluídas",
        "succeeded": "Com sucesso",
        "failed": "Com falha",
        "retried": "Repetidas",
        "success": "Taxa de sucesso",
        "waiting": "Mensagens na fila agora",
        "workers": "Workers agora",
        "poison": "Mensagens venenosas descartadas",
        "task": "{name} ({queue})",
        "task_value": "{succeeded} ok, {failed} com falha, p95 {p95}",
    },
}


def report_rows(figures: Stats, locale: str) -> list[ReportRow]:
    """The rows of a report of ``figures``: totals, then the busiest tasks, then now."""
    labels = _LABELS[locale]
    tasks = figures.tasks
    succeeded = sum(t.succeeded for t in tasks)
    failed = sum(t.failed for t in tasks)
    retried = sum(t.retried for t in tasks)
    done = succeeded + failed
    rows = [
        ReportRow(label=labels["finished"], value=str(done)),
        ReportRow(label=labels["succeeded"], value=str(succeeded)),
        ReportRow(label=labels["failed"], value=str(failed)),
        ReportRow(label=labels["retried"], value=str(retried)),
        ReportRow(label=labels["success"], value=f"{succeeded / done:.1%}" if done else "-"),
    ]
    busiest = sorted(tasks, key=lambda t: (-(t.succeeded + t.failed), t.name, t.queue))
    for task in busiest[:MAX_TASK_ROWS]:
        p95 = "-" if task.p95_runtime is None else f"{task.p95_runtime:.2f} s"
        rows.append(
            ReportRow(
                label=labels["task"].format(name=task.name, queue=task.queue),
                value=labels["task_value"].format(
                    succeeded=task.succeeded, failed=task.failed, p95=p95
                ),
            )
        )
    rows += [
        ReportRow(label=labels["waiting"], value=str(sum(q.depth for q in figures.queues))),
        ReportRow(label=labels["workers"], value=str(len(figures.workers))),
        ReportRow(label=labels["poison"], value=str(figures.poison)),
    ]
    return rows


def periodic_report(
    app: Celery, to: list[str] | None = None, period: float | None = None
) -> PeriodicReport:
    """Mail the stats of the last ``period`` seconds to ``to`` (defaults: the settings).

    Raises:
        SettingsError: nobody to send it to (``monitoring.report_to`` is empty).
        DispatchError: ``period`` is not between 1 second and 1 day.
    """
    settings = app_state(app).settings
    section = settings.monitoring
    recipients = list(to if to is not None else section.report_to)
    if not recipients:
        msg = "periodic_report has no recipients: set 'monitoring.report_to' or pass to=[...]"
        raise SettingsError(msg)
    seconds = section.report_period if period is None else period
    figures = stats(app, window=seconds)
    end = time.time()
    tz = zoneinfo.ZoneInfo(settings.timezone)
    start_at = dt.datetime.fromtimestamp(end - seconds, tz)
    end_at = dt.datetime.fromtimestamp(end, tz)
    shown = f"{start_at:%d/%m/%Y %H:%M} - {end_at:%d/%m/%Y %H:%M}"
    rows = report_rows(figures, section.report_locale)
    digest = hashlib.blake2b(",".join(sorted(recipients)).encode(), digest_size=8).hexdigest()
    message = EmailMessage(
        to=recipients,
        template="periodic_report",
        locale=section.report_locale,
        context={
            "period": shown,
            "generated_at": f"{end_at:%d/%m/%Y %H:%M}",
            "rows": [{"label": row.label, "value": row.value} for row in rows],
        },
        # One mail per recipients, period and minute, however often this task is delivered.
        idempotency_key=f"periodic-report:{round(seconds)}:{int(end // 60)}:{digest}",
    )
    sent = send_email.using(app).s(message).apply_async()
    return PeriodicReport(
        period=shown, seconds=seconds, recipients=recipients, rows=rows, mail_task_id=sent.id
    )
