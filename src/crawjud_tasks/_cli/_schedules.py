"""``crawjud-tasks schedules ...``: list, show, change and back up schedules (beat fires them)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import click
from celery import Celery

from crawjud_tasks import schedules
from crawjud_tasks._cli._loader import fail, load_app
from crawjud_tasks._contracts import declared_contracts
from crawjud_tasks.errors import CrawjudTasksError

__all__ = ["schedules_group"]


@click.group("schedules")
def schedules_group() -> None:
    """List, show, change and back up schedules (beat fires them)."""


@schedules_group.command("list")
@click.pass_context
def list_(ctx: click.Context) -> None:
    """Every schedule: id, timing, task, paused, next fire."""
    app = load_app(ctx)
    try:
        for spec in schedules.list_schedules(app):
            info = schedules.describe(app, spec.id, upcoming=1)
            timing = spec.cron or f"every {spec.every:g}s"
            state = "paused" if info.paused else "active"
            following = info.next_fires[0].isoformat() if info.next_fires else "-"
            click.echo(f"{spec.id}\t{timing}\t{spec.task}\t{state}\tnext {following}")
    except CrawjudTasksError as exc:
        raise fail(str(exc)) from exc


@schedules_group.command("show")
@click.argument("schedule_id")
@click.pass_context
def show(ctx: click.Context, schedule_id: str) -> None:
    """A schedule with its counters, next fires and last runs (JSON)."""
    app = load_app(ctx)
    try:
        info = schedules.describe(app, schedule_id)
    except CrawjudTasksError as exc:
        raise fail(str(exc)) from exc
    import msgspec  # noqa: PLC0415

    click.echo(json.dumps(msgspec.to_builtins(info), indent=2, default=str))


@schedules_group.command("next")
@click.argument("schedule_id")
@click.option("--count", "-n", default=5, show_default=True, type=click.IntRange(1, 100))
@click.pass_context
def next_(ctx: click.Context, schedule_id: str, count: int) -> None:
    """The coming fire times of a schedule (UTC and its zone)."""
    app = load_app(ctx)
    try:
        info = schedules.describe(app, schedule_id, upcoming=count)
    except CrawjudTasksError as exc:
        raise fail(str(exc)) from exc
    import zoneinfo  # noqa: PLC0415

    tz = zoneinfo.ZoneInfo(info.schedule.timezone)
    for moment in info.next_fires:
        click.echo(f"{moment.isoformat()}\t{moment.astimezone(tz).isoformat()}")


@schedules_group.command("add")
@click.argument("schedule_id")
@click.option("--task", "task_name", required=True, help="The contract, e.g. reports.nightly.")
@click.option("--cron", default=None, help='Five cron fields, e.g. "0 6 * * *".')
@click.option("--every", default=None, help="An interval: 1s, 5m, 1h, 1d.")
@click.option("--timezone", default="UTC", show_default=True)
@click.option("--arg", "args", multiple=True, help="A positional argument as JSON (repeat).")
@click.option("--kwarg", "kwargs", multiple=True, help="NAME=JSON keyword argument (repeat).")
@click.option("--overlap", type=click.Choice(["skip", "buffer_one", "allow"]), default="skip")
@click.option("--catchup-window", type=float, default=3600.0, show_default=True)
@click.option("--jitter", type=float, default=0.0)
@click.option("--pause-after-failures", type=int, default=None)
@click.option("--description", default="")
@click.option("--update", "replace", is_flag=True, help="Replace an existing schedule.")
@click.pass_context
def add(ctx: click.Context, /, schedule_id: str, task_name: str, **options: Any) -> None:
    """Add a schedule of a declared contract (the --app module must declare it)."""
    app = load_app(ctx)
    name = task_name.removeprefix(f"{_namespace(app)}.")
    contract = next((ref for ref in declared_contracts() if ref.name == name), None)
    if contract is None:
        msg = f"no contract named {task_name!r} is declared by the app; --app must import it"
        raise fail(msg)
    try:
        texts: tuple[str, ...] = options.pop("args")
        args: list[Any] = [json.loads(text) for text in texts]
        kwargs: dict[str, Any] = {}
        for pair in options.pop("kwargs"):
            key, sep, text = pair.partition("=")
            if not sep:
                raise fail(f"--kwarg takes NAME=JSON, got {pair!r}")
            kwargs[key] = json.loads(text)
    except ValueError as exc:
        raise fail(f"--arg/--kwarg values are JSON: {exc}") from exc
    replace = options.pop("replace")
    try:
        contract.codec.decode_arguments(tuple(args), kwargs)
        schedule = schedules.Schedule(id=schedule_id, task=contract.s(*args, **kwargs), **options)
        (schedules.update if replace else schedules.add)(app, schedule)
        info = schedules.describe(app, schedule_id, upcoming=1)
    except CrawjudTasksError as exc:
        raise fail(str(exc)) from exc
    first = info.next_fires[0].isoformat() if info.next_fires else "never"
    click.echo(f"{'updated' if replace else 'added'} {schedule_id}; next fire {first}")


@schedules_group.command("pause")
@click.argument("schedule_id")
@click.option("--note", default="", help="Why (shown by show).")
@click.pass_context
def pause(ctx: click.Context, schedule_id: str, note: str) -> None:
    """Stop firing a schedule until resume."""
    _run(ctx, lambda app: schedules.pause(app, schedule_id, note), f"paused {schedule_id}")


@schedules_group.command("resume")
@click.argument("schedule_id")
@click.pass_context
def resume(ctx: click.Context, schedule_id: str) -> None:
    """Fire a paused schedule again from its next fire time."""
    _run(ctx, lambda app: schedules.resume(app, schedule_id), f"resumed {schedule_id}")


@schedules_group.command("trigger")
@click.argument("schedule_id")
@click.pass_context
def trigger(ctx: click.Context, schedule_id: str) -> None:
    """Run a schedule's task now, once (its overlap policy applies); prints the task id."""

    def run(app: Celery) -> str:
        task_id = schedules.trigger(app, schedule_id)
        if task_id is None:
            return f"skipped: a run of {schedule_id} is still going (overlap 'skip')"
        return task_id

    _run(ctx, run, None)


@schedules_group.command("remove")
@click.argument("schedule_id")
@click.pass_context
def remove(ctx: click.Context, schedule_id: str) -> None:
    """Delete a schedule with its state and last runs."""
    _run(ctx, lambda app: schedules.remove(app, schedule_id), f"removed {schedule_id}")


@schedules_group.command("export")
@click.pass_context
def export(ctx: click.Context) -> None:
    """Every schedule as JSON on standard output."""
    _run(ctx, schedules.export_schedules, None)


@schedules_group.command("import")
@click.argument("source", type=click.File("rb"))
@click.option("--replace", is_flag=True, help="Also remove schedules the file does not hold.")
@click.pass_context
def import_(ctx: click.Context, source: Any, replace: bool) -> None:
    """Store the schedules of an export file ('-' for standard input)."""
    data = source.read(schedules_import_limit() + 1)

    def run(app: Any) -> str:
        report = schedules.import_schedules(app, data, replace=replace)
        return (
            f"added {len(report.added)}, updated {len(report.updated)}, "
            f"unchanged {len(report.unchanged)}, removed {len(report.removed)}"
        )

    _run(ctx, run, None)


def schedules_import_limit() -> int:
    return schedules.MAX_IMPORT_BYTES


def _namespace(app: Any) -> str:
    from crawjud_tasks._state import app_state  # noqa: PLC0415

    return app_state(app).settings.namespace


def _run(ctx: click.Context, action: Callable[[Celery], object], done: str | None) -> None:
    app = load_app(ctx)
    try:
        result = action(app)
    except CrawjudTasksError as exc:
        raise fail(str(exc)) from exc
    click.echo(done if done is not None else result)
