"""``crawjud-tasks worker`` and ``crawjud-tasks beat``: Celery's own programs on our app."""

from __future__ import annotations

import click

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
    app = load_app(ctx)
    app.worker_main(argv=["worker", *celery_args])


@click.command(context_settings=_PASSTHROUGH, add_help_option=False)
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def beat(ctx: click.Context, celery_args: tuple[str, ...]) -> None:
    """Run Celery beat; every option is Celery's (``crawjud-tasks beat --help``).

    On Redis the schedule lives in Redis under a lock (RedBeat), so a second beat never fires
    twice.
    """
    app = load_app(ctx)
    app.start(argv=["beat", *celery_args])
