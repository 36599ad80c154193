"""``crawjud-tasks worker`` and ``crawjud-tasks beat``: Celery's own programs on our app."""

from __future__ import annotations

from typing import Any

import click
from celery import Celery

from crawjud_tasks._cli._loader import load_app

__all__ = ["beat", "worker"]

_PASSTHROUGH: dict[str, bool | list[str]] = {
    "ignore_unknown_options": True,
    "allow_extra_args": True,
    "help_option_names": [],
}


@click.command(context_settings=_PASSTHROUGH, add_help_option=False)
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def worker(ctx: click.Context, celery_args: tuple[str, ...]) -> None:
    """Run a Celery worker; every option is Celery's (``crawjud-tasks worker --help``).

    By default it consumes every CrawJUD queue.
    """
    ctx.exit(_run_celery(load_app(ctx), ["worker", *celery_args]))


@click.command(context_settings=_PASSTHROUGH, add_help_option=False)
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def beat(ctx: click.Context, celery_args: tuple[str, ...]) -> None:
    """Run Celery beat; every option is Celery's (``crawjud-tasks beat --help``).

    On Redis the schedule lives in Redis under a lock (RedBeat), so a second beat never fires
    twice.
    """
    ctx.exit(_run_celery(load_app(ctx), ["beat", *celery_args]))


def _run_celery(app: Celery, argv: list[str]) -> int:
    """Run Celery's program ``argv`` on ``app`` and return its exit status.

    What ``Celery.start`` does, except that it keeps the status Celery's command returns
    (``start`` and ``worker_main`` drop it, celery 5.7 ``celery/app/base.py``): a worker that
    stops on an unrecoverable error exits non-zero, so that a supervisor restarts it.
    """
    from celery.bin.celery import celery as celery_command  # noqa: PLC0415  (Celery's CLI, on use)

    command: Any = celery_command
    command.params[0].default = app
    try:
        status = command.main(args=argv, standalone_mode=False)
    finally:
        command.params[0].default = None
    return status if isinstance(status, int) else 0
