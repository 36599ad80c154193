"""``health worker --live|--ready`` and ``health beat``: probes for containers; ``health check``:
the deployment's health report.

Probe exit codes: 0 healthy, 1 not healthy (the reasons on stderr), 2 usage error. ``health
check`` exits 0 when ok, 1 when degraded, 2 when down.
``health worker`` reads the worker's health record from the health folder without importing
Celery; pass ``--dir`` to skip reading settings too.
"""

from __future__ import annotations

from pathlib import Path

import click

__all__ = ["health"]


@click.group()
def health() -> None:
    """Health probes (exit 0: healthy, 1: not healthy)."""


@health.command()
@click.option(
    "--live",
    "check",
    flag_value="live",
    default=True,
    help="Process alive, loop fresh, not stalled.",
)
@click.option("--ready", "check", flag_value="ready", help="Live, and the broker connected.")
@click.option(
    "--dir",
    "directory",
    type=click.Path(path_type=Path),
    default=None,
    help="Health folder (default: monitoring.health_dir).",
)
@click.option("--node", default=None, help="The worker's node name (default: every record).")
def worker(check: str, directory: Path | None, node: str | None) -> None:
    """Check this machine's worker from its health record."""
    from crawjud_tasks.monitoring.probes import worker_health  # noqa: PLC0415  (no Celery import)

    if directory is None:
        from crawjud_tasks._settings import Settings  # noqa: PLC0415

        settings = Settings.from_env()
        directory = settings.monitoring.health_dir or settings.resolved_data_dir / "health"
    report = worker_health(directory, check="ready" if check == "ready" else "live", node=node)
    _exit(report.ok, report.reasons)


@health.command()
@click.pass_context
def beat(ctx: click.Context) -> None:
    """Check that beat wrote its heartbeat recently."""
    from crawjud_tasks._cli._loader import load_app  # noqa: PLC0415
    from crawjud_tasks.errors import CrawjudTasksError  # noqa: PLC0415
    from crawjud_tasks.monitoring import beat_health  # noqa: PLC0415

    try:
        report = beat_health(load_app(ctx))
    except CrawjudTasksError as exc:
        _exit(False, (str(exc),))
        return
    _exit(report.ok, report.reasons)


_CHECK_EXIT = {"ok": 0, "degraded": 1, "down": 2}


@health.command()
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_context
def check(ctx: click.Context, as_json: bool) -> None:
    """Check Redis, queues, consumers, beat, SMTP, disk and backups (within 10 s)."""
    import json  # noqa: PLC0415  (the probes above load nothing they do not need)

    import msgspec  # noqa: PLC0415

    from crawjud_tasks._cli._loader import load_app  # noqa: PLC0415
    from crawjud_tasks.maintenance import health_check  # noqa: PLC0415

    report = health_check(load_app(ctx))
    if as_json:
        click.echo(json.dumps(msgspec.to_builtins(report), indent=2))
    else:
        click.echo(f"{report.status.upper()} ({report.seconds:.1f} s)")
        for item in report.checks:
            click.echo(f"  {item.status:<8} {item.name:<10} {item.detail}")
        if report.alerted:
            click.echo("  an alert mail was dispatched")
    raise SystemExit(_CHECK_EXIT[report.status])


def _exit(ok: bool, reasons: tuple[str, ...]) -> None:
    for reason in reasons:
        click.echo(reason, err=True)
    if not ok:
        raise SystemExit(1)
    click.echo("ok")
