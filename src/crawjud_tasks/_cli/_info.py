"""``crawjud-tasks info``: settings (secrets redacted), broker reachability, tasks, queues.

Exit codes: 0 the broker answered, 3 it did not (the report is printed all the same), 1 an error
(invalid settings, a bad ``--app``).
"""

from __future__ import annotations

import json
from typing import Any

import click
from celery import Celery

from crawjud_tasks._cli._loader import load_app
from crawjud_tasks._redact import redact_url
from crawjud_tasks._state import app_state, has_state

__all__ = ["BROKER_UNREACHABLE", "info"]

#: The exit code of ``info`` when the broker does not answer.
BROKER_UNREACHABLE = 3


def _broker_status(app: Celery, timeout: float) -> str:
    try:
        with app.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=int(timeout) or 1)
            connection.default_channel  # noqa: B018  (opening a channel talks to the broker)
    except Exception as exc:
        return f"unreachable ({type(exc).__name__}: {exc})"
    return "reachable"


def _queue_names(app: Celery) -> list[str]:
    queues: Any = app.conf.task_queues or ()
    return [str(queue.name) for queue in queues]


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.pass_context
def info(ctx: click.Context, as_json: bool) -> None:
    """Show the resolved settings (secrets redacted), the broker, the tasks and the queues."""
    app = load_app(ctx)
    settings = app_state(app).settings.to_dict() if has_state(app) else None
    timeout = float(app.conf.broker_connection_timeout or 5.0)
    tasks = sorted(name for name in app.tasks if not name.startswith("celery."))
    report = {
        "broker": redact_url(str(app.conf.broker_url)),
        "result_backend": redact_url(str(app.conf.result_backend)),
        "broker_status": _broker_status(app, timeout),
        "tasks": tasks,
        "queues": _queue_names(app),
        "settings": settings,
    }
    if as_json:
        click.echo(json.dumps(report, indent=2, default=str))
    else:
        _print(report, settings)
    if report["broker_status"] != "reachable":
        raise SystemExit(BROKER_UNREACHABLE)


def _print(report: dict[str, Any], settings: dict[str, Any] | None) -> None:
    click.echo(f"broker:         {report['broker']} ({report['broker_status']})")
    click.echo(f"result backend: {report['result_backend']}")
    click.echo(f"queues:         {', '.join(report['queues']) or '(Celery default)'}")
    click.echo("tasks:")
    for name in report["tasks"]:
        click.echo(f"  {name}")
    if settings is not None:
        click.echo("settings:")
        click.echo(json.dumps(settings, indent=2, default=str))
