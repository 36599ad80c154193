"""``crawjud-tasks runs watch | cancel | show RUN_ID``: a bot run, from anywhere."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import click

from crawjud_tasks._cli._follow import follow_run, watch_hint
from crawjud_tasks._cli._loader import fail, load_app
from crawjud_tasks._cli._progress import duration
from crawjud_tasks._cli._run import check_run_id_option, progress_for_stdout
from crawjud_tasks._state import app_state
from crawjud_tasks.bots import RunState, cancel_run, run_state
from crawjud_tasks.errors import CrawjudTasksError

__all__ = ["runs"]

_RUN_ID = click.argument("run_id", callback=check_run_id_option)


@click.group()
def runs() -> None:
    """Bot runs: follow one, cancel one, show one."""


@runs.command()
@_RUN_ID
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    metavar="SECONDS",
    help="Stop following after this long (exit code 1).",
)
@click.option("--verbose", "-v", is_flag=True, help="Print every event, not only problems.")
@click.pass_context
def watch(ctx: click.Context, run_id: str, timeout: float | None, verbose: bool) -> None:
    """Replay RUN_ID's events, then follow it live to its end; exit with its status's code.

    A run not started yet is waited for. Ctrl-C asks whether to cancel it.
    """
    app = load_app(ctx)
    code = follow_run(app, run_id, progress_for_stdout(verbose=verbose), timeout=timeout)
    ctx.exit(code)


@runs.command()
@_RUN_ID
@click.option("--by", default=None, help="Who cancels (named in the cancellation notification).")
@click.pass_context
def cancel(ctx: click.Context, run_id: str, by: str | None) -> None:
    """Ask RUN_ID to stop: a running run stops before its next item; a queued one never starts."""
    app = load_app(ctx)
    try:
        before = cancel_run(app, run_id, by=by)
    except CrawjudTasksError as exc:
        raise fail(str(exc)) from exc
    if before is None:
        kept = duration(app_state(app).settings.bots.retention)
        click.echo(
            f"run {run_id} is not known (queued, or not dispatched yet, or expired); cancel "
            f"requested: if it starts within {kept}, it ends as cancelled before its first item"
        )
        return
    if before.finished:
        click.echo(f"run {run_id} had already ended ({before.phase}); nothing to cancel")
        return
    counts = before.counts
    click.echo(
        f"run {run_id} was {before.phase} ({counts.done}/{counts.total} items done); cancel "
        f"requested: it stops before its next item and reports what was done; {watch_hint(run_id)}"
    )


def _iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _as_dict(state: RunState) -> dict[str, Any]:
    counts = state.counts
    result = state.result
    seconds = None
    if result is not None:
        seconds = result.seconds
    elif state.started_at is not None and state.finished_at is not None:
        seconds = (state.finished_at - state.started_at).total_seconds()
    return {
        "run_id": state.run_id,
        "phase": state.phase,
        "bot": state.bot,
        "user_id": state.user_id,
        "task_id": state.task_id,
        "counts": {
            "total": counts.total,
            "succeeded": counts.succeeded,
            "failed": counts.failed,
            "skipped": counts.skipped,
            "remaining": counts.remaining,
        },
        "started_at": _iso(state.started_at),
        "finished_at": _iso(state.finished_at),
        "seconds": seconds,
        "report": state.report,
        "error": state.error,
        "error_sample": list(result.error_sample) if result is not None else [],
        "cancel_requested": state.cancel_requested,
    }


def _local(value: dt.datetime | None) -> str:
    return "-" if value is None else f"{value.astimezone():%Y-%m-%d %H:%M:%S %Z}"


@runs.command()
@_RUN_ID
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.pass_context
def show(ctx: click.Context, run_id: str, as_json: bool) -> None:
    """Show what is known of RUN_ID: phase, bot, user, counts, times, report, error."""
    app = load_app(ctx)
    try:
        state = run_state(app, run_id)
    except CrawjudTasksError as exc:
        raise fail(str(exc)) from exc
    if state is None:
        msg = f"no run {run_id!r} is known (not started yet, a wrong id, or expired)"
        raise fail(msg)
    info = _as_dict(state)
    if as_json:
        click.echo(json.dumps(info, indent=2, ensure_ascii=False))
        return
    counts = state.counts
    phase = state.phase + (" (cancel requested)" if state.cancel_requested else "")
    items = (
        f"{counts.total} total, {counts.succeeded} succeeded, {counts.failed} failed, "
        f"{counts.skipped} skipped, {counts.remaining} left"
    )
    rows = [
        ("run", state.run_id),
        ("phase", phase),
        ("bot", state.bot or "-"),
        ("user", "-" if state.user_id is None else str(state.user_id)),
        ("task", state.task_id or "-"),
        ("items", items),
        ("started", _local(state.started_at)),
        ("finished", _local(state.finished_at)),
    ]
    if info["seconds"] is not None:
        rows.append(("took", duration(info["seconds"])))
    rows.append(("report", state.report or "-"))
    if state.error:
        rows.append(("error", state.error))
    for label, value in rows:
        click.echo(f"{label + ':':<10}{value}")
    sample: list[str] = info["error_sample"]
    for index, reason in enumerate(sample):
        click.echo(f"{'errors:' if index == 0 else '':<10}{reason}")
