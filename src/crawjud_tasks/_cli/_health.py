"""``crawjud-tasks health check``: the health report, one line per check; the exit status is
0 when ok, 1 when degraded, 2 when down."""

from __future__ import annotations

import json
import sys

import click
import msgspec

from crawjud_tasks._cli._loader import load_app
from crawjud_tasks.maintenance import health_check

__all__ = ["health"]

_EXIT = {"ok": 0, "degraded": 1, "down": 2}


@click.group()
def health() -> None:
    """Health of the deployment."""


@health.command()
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_context
def check(ctx: click.Context, as_json: bool) -> None:
    """Check Redis, queues, consumers, beat, SMTP, disk and backups (within 10 s)."""
    app = load_app(ctx)
    report = health_check(app)
    if as_json:
        click.echo(json.dumps(msgspec.to_builtins(report), indent=2))
    else:
        click.echo(f"{report.status.upper()} ({report.seconds:.1f} s)")
        for item in report.checks:
            click.echo(f"  {item.status:<8} {item.name:<10} {item.detail}")
        if report.alerted:
            click.echo("  an alert mail was dispatched")
    sys.exit(_EXIT[report.status])
