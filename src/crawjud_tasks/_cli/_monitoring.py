"""``tasks show|active``, ``stats``, ``top`` and ``metrics serve``: the monitoring commands."""

from __future__ import annotations

import dataclasses
import json
import re
import time
from typing import Any

import click

from crawjud_tasks._cli._loader import fail, load_app
from crawjud_tasks.errors import CrawjudTasksError
from crawjud_tasks.monitoring import Stats, active_tasks, serve_metrics, stats, task_status

__all__ = ["metrics", "stats_command", "tasks", "top"]

_WINDOW = re.compile(r"^(\d+(?:\.\d+)?)([smh]?)$")
_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0}


def _window(_: click.Context, __: click.Parameter, value: str) -> float:
    match = _WINDOW.match(value.strip())
    if match is None:
        msg = f"--window takes a duration like 90s, 15m or 1h, got {value!r}"
        raise click.BadParameter(msg)
    return float(match[1]) * _UNITS[match[2]]


def _json(value: Any) -> str:
    return json.dumps(value, default=str, indent=2)


@click.group()
def tasks() -> None:
    """Task status and what runs now."""


@tasks.command()
@click.argument("task_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def show(ctx: click.Context, task_id: str, as_json: bool) -> None:
    """Show the status of task TASK_ID ('unknown' if nothing has seen it)."""
    try:
        status = task_status(load_app(ctx), task_id)
    except CrawjudTasksError as exc:
        raise fail(str(exc)) from exc
    fields = dataclasses.asdict(status)
    if as_json:
        click.echo(_json(fields))
        return
    for name, value in fields.items():
        if value is not None and name != "traceback":
            click.echo(f"{name:>13}: {value}")
    if status.traceback:
        click.echo(status.traceback.rstrip())


@tasks.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def active(ctx: click.Context, as_json: bool) -> None:
    """List the tasks running now on every worker (as of their last flush)."""
    try:
        running = active_tasks(load_app(ctx))
    except CrawjudTasksError as exc:
        raise fail(str(exc)) from exc
    if as_json:
        click.echo(_json([dataclasses.asdict(task) for task in running]))
        return
    if not running:
        click.echo("no task is running")
    for task in running:
        click.echo(
            f"{task.id}  {task.name}  {task.queue}  {task.worker}  since {task.started:%H:%M:%S}"
        )


def render(figures: Stats) -> str:
    """The ``stats`` tables as text."""
    lines = [f"window: {figures.window:.0f} s"]
    lines.append(
        f"{'TASK':<40} {'QUEUE':<18} {'RATE/s':>7} {'OK':>6} {'FAIL':>5} {'RETRY':>5} "
        f"{'MEAN s':>8} {'P95 s':>8} {'ACTIVE':>6}"
    )
    for t in figures.tasks:
        mean = f"{t.mean_runtime:.3f}" if t.mean_runtime is not None else "-"
        p95 = f"{t.p95_runtime:.3f}" if t.p95_runtime is not None else "-"
        lines.append(
            f"{t.name[:40]:<40} {t.queue[:18]:<18} {t.rate:>7.2f} {t.succeeded:>6} {t.failed:>5} "
            f"{t.retried:>5} {mean:>8} {p95:>8} {t.active:>6}"
        )
    lines.append(f"\n{'QUEUE':<30} {'DEPTH':>7} {'OLDEST s':>9}")
    for q in figures.queues:
        oldest = f"{q.oldest_age:.1f}" if q.oldest_age is not None else "-"
        lines.append(f"{q.name[:30]:<30} {q.depth:>7} {oldest:>9}")
    lines.append(
        f"\n{'WORKER':<40} {'PROCS':>5} {'ACTIVE':>6} {'CONC':>5} {'RSS MB':>7} {'CPU s':>8}"
    )
    for w in figures.workers:
        lines.append(
            f"{w.node[:40]:<40} {w.processes:>5} {w.active:>6} {w.concurrency or '-'!s:>5} "
            f"{w.rss / 1e6:>7.1f} {w.cpu:>8.1f}"
        )
    lines.append(
        f"\nunacked: {figures.unacked}  poison: {figures.poison}  "
        f"metrics dropped: {figures.metrics_dropped}"
    )
    return "\n".join(lines)


@click.command("stats")
@click.option("--window", default="15m", callback=_window, help="Duration: 90s, 15m, 1h (max 24h).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def stats_command(ctx: click.Context, window: float, as_json: bool) -> None:
    """Rates, ratios and runtimes per task and queue; queue depths; workers."""
    try:
        figures = stats(load_app(ctx), window=window)
    except CrawjudTasksError as exc:
        raise fail(str(exc)) from exc
    click.echo(_json(dataclasses.asdict(figures)) if as_json else render(figures))


@click.command()
@click.option("--window", default="5m", callback=_window, help="Duration of the rates shown.")
@click.option(
    "--interval", default=2.0, type=click.FloatRange(min=0.2), help="Seconds between refreshes."
)
@click.option(
    "--iterations", default=0, type=click.IntRange(min=0), help="Stop after N refreshes (0: never)."
)
@click.option(
    "--once", is_flag=True, help="Print one frame (no screen clearing) and exit: for scripts."
)
@click.pass_context
def top(ctx: click.Context, window: float, interval: float, iterations: int, once: bool) -> None:
    """A live table of workers, active tasks, rates, runtimes and queues (Ctrl-C stops)."""
    app = load_app(ctx)
    if once:
        try:
            figures = stats(app, window=window)
        except CrawjudTasksError as exc:
            raise fail(str(exc)) from exc
        click.echo(f"crawjud-tasks top  {time.strftime('%H:%M:%S')}\n{render(figures)}")
        return
    count = 0
    try:
        while True:
            try:
                text = render(stats(app, window=window))
            except CrawjudTasksError as exc:
                text = f"error: {exc}"
            click.clear()
            click.echo(f"crawjud-tasks top  {time.strftime('%H:%M:%S')}\n{text}")
            count += 1
            if iterations and count >= iterations:
                return
            time.sleep(interval)
    except KeyboardInterrupt:
        return


@click.group()
def metrics() -> None:
    """The Prometheus exporter."""


@metrics.command()
@click.option("--host", default="0.0.0.0", show_default=True, help="Address to listen on.")  # noqa: S104  (an exporter listens for Prometheus)
@click.option("--port", default=9808, show_default=True, type=click.IntRange(1, 65535))
@click.pass_context
def serve(ctx: click.Context, host: str, port: int) -> None:
    """Serve the metrics on http://HOST:PORT/ (any path) until interrupted."""
    app = load_app(ctx)
    click.echo(f"serving metrics on http://{host}:{port}/metrics")
    try:
        serve_metrics(app, host=host, port=port)
    except CrawjudTasksError as exc:
        raise fail(str(exc)) from exc
    except OSError as exc:
        raise fail(f"cannot listen on {host}:{port}: {exc}") from exc
    except KeyboardInterrupt:
        return
