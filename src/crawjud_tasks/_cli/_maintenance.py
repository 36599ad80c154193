"""``crawjud-tasks maintenance clean|backup|restore|hygiene|sync``: run one maintenance
operation here, with a progress line and a summary; a refused operation exits non-zero."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import click

from crawjud_tasks._cli._loader import fail, load_app
from crawjud_tasks.errors import CrawjudTasksError
from crawjud_tasks.maintenance import (
    backup,
    clean_defaults,
    clean_files,
    redis_hygiene,
    restore,
    run_sync,
)
from crawjud_tasks.maintenance.contracts import CleanReport

__all__ = ["maintenance", "parse_duration"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")


def parse_duration(text: str) -> float:
    """Seconds from ``30d``, ``12h``, ``90m``, ``45s``, ``2w`` or a plain number of seconds.

    Raises:
        click.BadParameter: it is none of those.
    """
    match = _DURATION.match(text)
    if match is None:
        msg = f"{text!r} is not a duration; write it like 30d, 12h, 90m, 45s or 2w"
        raise click.BadParameter(msg)
    return float(match.group(1)) * _UNITS[match.group(2) or "s"]


def _size(count: int) -> str:
    size = float(count)
    for unit in ("B", "KB", "MB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"


def _progress(seen: int, removed: int) -> None:
    if sys.stderr.isatty():
        click.echo(f"\r{seen} files looked at, {removed} removed", nl=False, err=True)


def _summary(report: CleanReport) -> None:
    verb = "would remove" if report.dry_run else "removed"
    click.echo(f"{report.root}: {verb} {report.files} files ({_size(report.bytes)})")
    for reason, count in sorted(report.skipped_counts.items()):
        click.echo(f"  skipped {count}: {reason}")
    if report.truncated:
        click.echo("  stopped at --max-files; run again for the rest")


@click.group()
def maintenance() -> None:
    """Maintenance: clean files, back up and restore, Redis hygiene, sync jobs."""


@maintenance.command()
@click.argument("root", required=False)
@click.option("--older-than", default="30d", show_default=True, help="Age, e.g. 30d, 12h.")
@click.option("--pattern", default="*", show_default=True, help="File names to match.")
@click.option("--keep-last", type=int, default=0, help="Keep the newest N of each folder.")
@click.option("--max-files", type=int, default=None, help="Remove at most this many.")
@click.option("--dry-run", is_flag=True, help="Say what would go; remove nothing.")
@click.pass_context
def clean(
    ctx: click.Context,
    root: str | None,
    *,
    older_than: str,
    pattern: str,
    keep_last: int,
    max_files: int | None,
    dry_run: bool,
) -> None:
    """Remove old files under ROOT.

    With no ROOT: the library's logs, reports and outbox, each by its retention setting
    (--older-than, --pattern, --keep-last and --max-files apply to ROOT only).
    """
    age = parse_duration(older_than)
    app = load_app(ctx)
    try:
        if root is None:
            reports = clean_defaults(app, dry_run=dry_run)
        else:
            absolute = root if root.startswith("/") else str(Path.cwd() / root)
            reports = [
                clean_files(
                    app,
                    absolute,
                    pattern,
                    age,
                    keep_last=keep_last,
                    max_files=max_files,
                    dry_run=dry_run,
                    progress=_progress,
                )
            ]
    except CrawjudTasksError as exc:
        raise fail(str(exc)) from exc
    if sys.stderr.isatty():
        click.echo("", err=True)
    for report in reports:
        _summary(report)


@maintenance.command(name="backup")
@click.option("--to", "folder", default=None, help="Folder to write into (inside the roots).")
@click.pass_context
def backup_command(ctx: click.Context, folder: str | None) -> None:
    """Write one backup archive (keys with TTLs, embedded snapshot, folders)."""
    app = load_app(ctx)
    click.echo("backing up...", err=True)
    try:
        report = backup(app, to=folder)
    except CrawjudTasksError as exc:
        raise fail(str(exc)) from exc
    click.echo(f"{report.path} ({_size(report.bytes)}, sha256 {report.sha256[:16]}...)")
    snapshot = ", the embedded snapshot" if report.snapshot else ""
    click.echo(f"  {report.keys} keys{snapshot}, {report.files} files")
    for name in report.removed:
        click.echo(f"  removed by retention: {name}")
    for skipped in report.skipped:
        click.echo(f"  left out {skipped.path}: {skipped.reason}")


@maintenance.command(name="restore")
@click.argument("archive")
@click.option("--to", "target", default=None, help="Folder for the backed-up files.")
@click.option("--no-redis", is_flag=True, help="Restore no keys.")
@click.option("--replace", is_flag=True, help="Overwrite keys and files that exist.")
@click.pass_context
def restore_command(
    ctx: click.Context, archive: str, target: str | None, no_redis: bool, replace: bool
) -> None:
    """Verify ARCHIVE against its checksum and restore it."""
    app = load_app(ctx)
    path = archive if archive.startswith("/") else str(Path.cwd() / archive)
    try:
        report = restore(app, path, target=target, redis=not no_redis, replace=replace)
    except CrawjudTasksError as exc:
        raise fail(str(exc)) from exc
    click.echo(f"restored {report.archive}")
    click.echo(f"  {report.keys} keys ({report.keys_existing} existed and were left)")
    if report.target is not None:
        click.echo(f"  {report.files} files under {report.target}")
    if report.snapshot is not None:
        click.echo(f"  snapshot: {report.snapshot} (load it with the server stopped)")


@maintenance.command()
@click.option("--dry-run", is_flag=True, help="Count what would be done; change nothing.")
@click.option("--budget", type=float, default=None, help="Seconds the pass may scan.")
@click.pass_context
def hygiene(ctx: click.Context, dry_run: bool, budget: float | None) -> None:
    """One time-budgeted pass over the library's Redis keys."""
    app = load_app(ctx)
    try:
        report = redis_hygiene(app, dry_run=dry_run, budget=budget)
    except CrawjudTasksError as exc:
        raise fail(str(exc)) from exc
    verb = "would unlink" if dry_run else "unlinked"
    whole = "whole keyspace" if report.complete else "stopped by its budget; run again"
    click.echo(f"scanned {report.scanned} keys in {report.seconds:.1f} s ({whole})")
    click.echo(f"  {verb} {report.unlinked}, gave a TTL to {report.expired}")
    for family, used in sorted(report.memory.items(), key=lambda item: -item[1]):
        click.echo(f"  {family}: {report.keys[family]} keys, {_size(used)}")


@maintenance.command(name="sync")
@click.argument("name")
@click.pass_context
def sync_command(ctx: click.Context, name: str) -> None:
    """Run the host's sync job NAME once (declared on the --app app)."""
    app = load_app(ctx)
    try:
        report = run_sync(app, name)
    except CrawjudTasksError as exc:
        raise fail(str(exc)) from exc
    resumed = " (resumed from its checkpoint)" if report.resumed else ""
    click.echo(f"{report.name}: {report.rows} rows in {report.pages} pages{resumed}")
    lag = "" if report.lag is None else f", lag {report.lag:.0f} s"
    click.echo(f"  watermark {report.watermark or 'none'}{lag}")
