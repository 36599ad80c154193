"""The ``crawjud-tasks`` command line (click, which Celery already brings).

The command line is a surface: it uses a domain only through the domain's public modules
(``crawjud_tasks.bots``, ``crawjud_tasks.bots.contracts``, ``crawjud_tasks.mail``...), public names
through the package root (``crawjud_tasks``) and ``crawjud_tasks.errors``, and, for what the
library keeps internal, the top-level modules of the assembly, runtime and core layers
(``crawjud_tasks._state``, ``_worker_process``, ``_redact``, ``_metadata``). Never a domain's
``_modules``: what a command needs from a domain is added to that domain's public API. The
import-linter contracts in ``pyproject.toml`` (``nox -s lint``) check it.
"""

from __future__ import annotations

import click

from crawjud_tasks._cli._demo import demo
from crawjud_tasks._cli._embedded import embedded
from crawjud_tasks._cli._info import info
from crawjud_tasks._cli._loader import APP_HELP
from crawjud_tasks._cli._mail import mail
from crawjud_tasks._cli._run import run
from crawjud_tasks._cli._runs import runs
from crawjud_tasks._cli._schedules import schedules_group
from crawjud_tasks._cli._worker import beat, worker
from crawjud_tasks._metadata import version

__all__ = ["cli", "main"]


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


def main() -> None:
    """Entry point of the ``crawjud-tasks`` script."""
    cli(prog_name="crawjud-tasks")
