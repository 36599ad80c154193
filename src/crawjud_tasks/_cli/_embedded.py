"""``crawjud-tasks embedded start|stop|status``: the embedded Redis in the data folder."""

from __future__ import annotations

from pathlib import Path

import click

from crawjud_tasks import EmbeddedRedis, EmbeddedStatus, Settings
from crawjud_tasks._cli._loader import fail
from crawjud_tasks.errors import CrawjudTasksError

__all__ = ["embedded"]

_DATA_DIR = click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="The data folder (default: CRAWJUD_TASKS_DATA_DIR, else the user data folder).",
)


def _server(data_dir: Path | None) -> EmbeddedRedis:
    try:
        settings = Settings.from_env()
    except CrawjudTasksError as exc:
        raise fail(str(exc)) from exc
    return EmbeddedRedis(data_dir or settings.resolved_data_dir)


def _show(status: EmbeddedStatus) -> None:
    if status.running:
        click.echo(
            f"running: pid {status.pid}, redis {status.version}, {status.keys} keys, "
            f"socket {status.socket}"
        )
    else:
        click.echo(f"stopped (socket {status.socket})")


@click.group()
def embedded() -> None:
    """Start, stop or inspect the embedded Redis server."""


@embedded.command()
@_DATA_DIR
def start(data_dir: Path | None) -> None:
    """Start the embedded Redis (or report the one already running)."""
    try:
        status = _server(data_dir).start()
    except CrawjudTasksError as exc:
        raise fail(str(exc)) from exc
    click.echo("started" if status.started else "already running")
    _show(status)


@embedded.command()
@_DATA_DIR
def stop(data_dir: Path | None) -> None:
    """Stop the embedded Redis; its append-only file keeps what was queued."""
    try:
        stopped = _server(data_dir).stop()
    except CrawjudTasksError as exc:
        raise fail(str(exc)) from exc
    click.echo("stopped" if stopped else "not running")


@embedded.command()
@_DATA_DIR
def status(data_dir: Path | None) -> None:
    """Say whether the embedded Redis runs (exit code 1 when it does not)."""
    current = _server(data_dir).status()
    _show(current)
    if not current.running:
        raise SystemExit(1)
