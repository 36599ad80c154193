"""``crawjud-tasks mail``: mail tools (``preview``; the group takes further commands)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypeGuard

import click

from crawjud_tasks import MailSettings, Settings
from crawjud_tasks._cli._loader import fail, load_app
from crawjud_tasks._cli._mail_send_test import send_test
from crawjud_tasks._state import app_state, has_state
from crawjud_tasks.errors import CrawjudTasksError
from crawjud_tasks.mail import check_template, example_context, render

__all__ = ["mail", "mail_settings"]


def mail_settings(ctx: click.Context) -> MailSettings:
    """The mail settings of ``--app``'s app, else of the ``CRAWJUD_TASKS_*`` environment.

    Without ``--app`` no app is built, so no embedded Redis is started.
    """
    if ctx.find_root().obj is not None:
        app = load_app(ctx)
        return app_state(app).settings.mail if has_state(app) else MailSettings()
    try:
        return Settings.from_env().mail
    except CrawjudTasksError as exc:
        raise fail(str(exc)) from exc


@click.group()
def mail() -> None:
    """Mail tools: preview a template, send a test message."""


def _is_object(value: object) -> TypeGuard[dict[str, Any]]:
    """A JSON object (its keys are always strings)."""
    return isinstance(value, dict)


def _read_context(path: Path) -> dict[str, Any]:
    try:
        raw = path.read_text(encoding="utf-8")
    except OSError as exc:
        msg = f"--context {path}: cannot read it ({exc.strerror or exc})"
        raise fail(msg) from exc
    try:
        loaded: object = json.loads(raw)
    except ValueError as exc:
        msg = f"--context {path}: not valid JSON ({exc})"
        raise fail(msg) from exc
    if not _is_object(loaded):
        msg = f"--context {path}: must be a JSON object of variables, got {type(loaded).__name__}"
        raise fail(msg)
    return loaded


@mail.command()
@click.argument("template")
@click.option(
    "--context",
    "context_file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="A JSON object with the template's variables. Default: the shipped example context.",
)
@click.option("--locale", default="pt_BR", show_default=True, help="pt_BR or en.")
@click.option(
    "--out",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Where to write the HTML part. Default: <TEMPLATE>.<LOCALE>.html here.",
)
@click.pass_context
def preview(
    ctx: click.Context, template: str, context_file: Path | None, locale: str, out: Path | None
) -> None:
    """Render TEMPLATE: write the HTML part to a file, print the subject and the text part."""
    settings = mail_settings(ctx)
    try:
        check_template(settings, template, locale)
        if context_file is not None:
            context = _read_context(context_file)
        else:
            example = example_context(template)
            if example is None:
                msg = f"{template!r} has no shipped example context; give one with --context FILE"
                raise fail(msg)
            context = example
        rendered = render(settings, template, context, locale)
    except CrawjudTasksError as exc:
        raise fail(str(exc)) from exc
    target = out if out is not None else Path(f"{template}.{locale}.html")
    try:
        target.write_text(rendered.html, encoding="utf-8")
    except OSError as exc:
        msg = f"--out {target}: cannot write it ({exc.strerror or exc})"
        raise fail(msg) from exc
    click.echo(f"Subject: {rendered.subject}")
    click.echo(f"HTML:    {target}")
    click.echo("")
    click.echo(rendered.text, nl=False)


mail.add_command(send_test)
