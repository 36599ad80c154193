"""``crawjud-tasks demo``: the library's main job, end to end, on the embedded default."""

from __future__ import annotations

import time

import click
from celery import Celery

from crawjud_tasks._app import create_app
from crawjud_tasks._cli._loader import fail
from crawjud_tasks._embedded import EmbeddedRedis
from crawjud_tasks._ping import ping
from crawjud_tasks._redact import redact_url
from crawjud_tasks._settings import Settings
from crawjud_tasks._worker_process import WorkerProcess
from crawjud_tasks.errors import CrawjudTasksError

__all__ = ["demo"]


def _step(text: str) -> None:
    click.secho(f"==> {text}", bold=True)


def _notify(app: Celery, settings: Settings, timeout: float) -> None:
    """Send a templated notification through the worker to the outbox, and show where it is."""
    if settings.mail.host is not None:
        click.echo("    (a mail host is configured: the demo sends no notification to it)")
        return
    from crawjud_tasks.mail._templates import example_context  # noqa: PLC0415
    from crawjud_tasks.mail.contracts import EmailMessage, send_email  # noqa: PLC0415

    _step(f"sending the bot_finished notification through {settings.namespace}.mail.send_email")
    message = EmailMessage(
        to=["Equipe CrawJUD <equipe@example.org>"],
        template="bot_finished",
        locale="pt_BR",
        context=example_context("bot_finished") or {},
    )
    receipt = send_email.using(app).delay(message).get(timeout=timeout)
    click.echo(f"    written to the outbox: {receipt.path}")


@click.command()
@click.option("--timeout", default=30.0, show_default=True, help="Seconds to wait for the worker.")
def demo(timeout: float) -> None:
    """Start the embedded Redis and a worker, send crawjud.ping through a queue and a templated
    notification to the outbox, then stop both.

    With CRAWJUD_TASKS_BROKER_URL set, the demo uses that broker instead and leaves it running.
    """
    started = time.monotonic()
    try:
        settings = Settings.from_env()
        embedded: EmbeddedRedis | None = None
        if settings.broker_url is None:
            embedded = EmbeddedRedis(settings.resolved_data_dir)
            _step(f"embedded Redis in {embedded.directory}")
            status = embedded.start()
            click.echo(
                f"    {'started' if status.started else 'attached to'} redis {status.version} "
                f"(pid {status.pid}) on {status.socket}"
            )
            if not status.started:
                embedded = None  # someone else's server: leave it running
        app = create_app(settings)
        _step(f"worker process on {redact_url(str(app.conf.broker_url))}")
        with WorkerProcess(app, settings=settings) as worker:
            click.echo(f"    {worker.nodename} (pid {worker.pid}) is consuming")
            queue = settings.queue_names["default"]
            _step(f"dispatching {settings.namespace}.ping through the queue {queue!r}")
            sent = time.monotonic()
            answer = ping(app, queue=queue, timeout=timeout)
            took = (time.monotonic() - sent) * 1000
            click.echo(f"    answered by {answer.hostname}")
            click.echo(f"    crawjud-tasks {answer.version}, ran at {answer.time.isoformat()}")
            click.echo(f"    round trip {took:.1f} ms")
            _notify(app, settings, timeout)
            _step("stopping the worker")
        if embedded is not None:
            _step("stopping the embedded Redis")
            embedded.stop()
    except CrawjudTasksError as exc:
        raise fail(str(exc)) from exc
    click.secho(f"demo finished in {time.monotonic() - started:.1f} s", fg="green", bold=True)
