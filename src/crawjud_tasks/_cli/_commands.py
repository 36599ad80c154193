"""The ``crawjud-tasks`` click group and its commands (loads Celery: see ``__init__``)."""

from __future__ import annotations

import click

from crawjud_tasks._cli._demo import demo
from crawjud_tasks._cli._embedded import embedded
from crawjud_tasks._cli._health import health
from crawjud_tasks._cli._info import info
from crawjud_tasks._cli._loader import APP_HELP
from crawjud_tasks._cli._mail import mail
from crawjud_tasks._cli._maintenance import maintenance
from crawjud_tasks._cli._monitoring import metrics, stats_command, tasks, top
from crawjud_tasks._cli._run import run
from crawjud_tasks._cli._runs import runs
from crawjud_tasks._cli._schedules import schedules_group
from crawjud_tasks._cli._worker import beat, worker
from crawjud_tasks._metadata import version

__all__ = ["cli"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--app", "-A", "app_spec", metavar="MODULE:ATTR", default=None, help=APP_HELP)
@click.version_option(version(), prog_name="crawjud-tasks")
@click.pass_context
def cli(ctx: click.Context, app_spec: str | None) -> None:
    """crawjud-tasks: run and inspect the CrawJUD task layer.

    Settings come from CRAWJUD_TASKS_* environment variables unless --app names an app.
    """
    ctx.obj = app_spec


cli.add_command(worker)
cli.add_command(beat)
cli.add_command(embedded)
cli.add_command(info)
cli.add_command(demo)
cli.add_command(mail)
cli.add_command(run)
cli.add_command(runs)
cli.add_command(schedules_group)
cli.add_command(tasks)
cli.add_command(stats_command)
cli.add_command(top)
cli.add_command(metrics)
cli.add_command(maintenance)
cli.add_command(health)
