"""``crawjud-tasks demo``: the library's main job, end to end, on the embedded default."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import click
from celery import Celery

from crawjud_tasks import EmbeddedRedis, Settings, create_app, ping
from crawjud_tasks._cli._demo_input import write_demo_spreadsheet
from crawjud_tasks._cli._follow import follow_run
from crawjud_tasks._cli._loader import fail
from crawjud_tasks._cli._run import progress_for_stdout
from crawjud_tasks._redact import redact_url
from crawjud_tasks._worker_process import WorkerProcess
from crawjud_tasks.bots.contracts import BotInput, BotParameters, execute_bot
from crawjud_tasks.errors import CrawjudTasksError

__all__ = ["demo"]


def _with_demo_root(settings: Settings) -> Settings:
    """``settings`` with the demo's folder among the bots' allowed roots."""
    folder = settings.resolved_data_dir / "demo"
    roots = (*settings.bots.allowed_roots, folder)
    return dataclasses.replace(
        settings, bots=dataclasses.replace(settings.bots, allowed_roots=roots)
    )


def _step(text: str) -> None:
    click.secho(f"==> {text}", bold=True)


def _run_bot(app: Celery, settings: Settings, timeout: float) -> None:
    """Run ``cnj.validar`` over a generated spreadsheet with the live progress line, then show
    the report and the notification the run sent to the outbox (or the mail host)."""
    folder = settings.resolved_data_dir / "demo"
    path = write_demo_spreadsheet(folder)
    _step(f"a spreadsheet of 1,000 lawsuit numbers, some of them wrong: {path}")
    _step(f"running the bot cnj.validar through {settings.namespace}.bots.execute_bot")
    parameters = BotParameters(
        input=BotInput.from_file(str(path)),
        notify=["Equipe CrawJUD <equipe@example.org>"],
        user_name="Equipe CrawJUD",
        locale="pt_BR",
    )
    handle = execute_bot.using(app).delay("cnj.validar", "demo", parameters)
    follow_run(
        app,
        handle.id,
        progress_for_stdout(verbose=False, failed_lines=3),
        handle=handle,
        timeout=timeout,
    )
    result = handle.get(timeout=timeout)
    if settings.mail.host is not None:
        click.echo(f"    the notification went to the mail server {settings.mail.host}")
        return
    outbox = settings.mail.outbox_dir or settings.resolved_data_dir / "outbox"
    email = _wait_for_email(outbox, result.run_id, timeout)
    click.echo(f"    notification: {email}" if email else "    (no notification in the outbox yet)")


def _wait_for_email(outbox: Path, run_id: str, timeout: float) -> Path | None:
    """The ``bot_finished`` email of ``run_id`` in the outbox, once the mail task wrote it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path in sorted(Path(outbox).glob("*.eml")):
            head = path.read_bytes()[:4096]
            if run_id.encode() in head and b"conclu" in head:
                return path
        time.sleep(0.1)
    return None


@click.command()
@click.option("--timeout", default=60.0, show_default=True, help="Seconds to wait for each step.")
def demo(timeout: float) -> None:
    """Start the embedded Redis and a worker, send crawjud.ping through a queue, run the bot
    cnj.validar over 1,000 generated lawsuit numbers with a live progress line (report and
    notification included), then stop both.

    With CRAWJUD_TASKS_BROKER_URL set, the demo uses that broker instead and leaves it running.
    """
    started = time.monotonic()
    try:
        settings = _with_demo_root(Settings.from_env())
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
            _run_bot(app, settings, timeout)
            _step("stopping the worker")
        if embedded is not None:
            _step("stopping the embedded Redis")
            embedded.stop()
    except CrawjudTasksError as exc:
        raise fail(str(exc)) from exc
    click.secho(f"demo finished in {time.monotonic() - started:.1f} s", fg="green", bold=True)
