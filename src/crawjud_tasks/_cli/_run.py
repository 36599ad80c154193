"""``crawjud-tasks run BOT --input FILE``: dispatch a bot run and follow it to its end."""

from __future__ import annotations

import getpass
import json
import sys
from pathlib import Path
from typing import Literal, cast

import click

from crawjud_tasks._cli._follow import follow_run, watch_hint
from crawjud_tasks._cli._loader import fail, load_app
from crawjud_tasks._cli._progress import Progress
from crawjud_tasks._state import app_state, has_state
from crawjud_tasks.bots import check_run_id
from crawjud_tasks.bots.contracts import (
    MAX_PARALLELISM,
    BotInput,
    BotParameters,
    Cell,
    SecretRef,
    execute_bot,
)
from crawjud_tasks.errors import CrawjudTasksError

__all__ = ["check_run_id_option", "progress_for_stdout", "run"]

_SUFFIXES = (".csv", ".xlsx")


# -- option checks (each a one-line usage error, exit code 2) ----------------------------------


def _check_input(_ctx: click.Context, _param: click.Parameter, value: Path) -> Path:
    path = value.expanduser().absolute()
    if path.suffix.lower() not in _SUFFIXES:
        msg = f"{path} is not a .csv or .xlsx file"
        raise click.BadParameter(msg)
    return path


def _parse_options(
    _ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]
) -> dict[str, Cell]:
    options: dict[str, Cell] = {}
    for given in values:
        name, sep, value = given.partition("=")
        name = name.strip()
        if not sep or not name:
            msg = f"{given!r} is not KEY=VALUE (for example --option delay=0.5)"
            raise click.BadParameter(msg)
        if name in options:
            msg = f"{name!r} is given twice"
            raise click.BadParameter(msg)
        options[name] = value
    return options


def _check_notify(
    _ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]
) -> tuple[str, ...]:
    from crawjud_tasks.mail import parse_address  # noqa: PLC0415  (mail loads lazily)

    for value in values:
        try:
            parse_address("--notify", value)
        except CrawjudTasksError as exc:
            raise click.BadParameter(str(exc)) from exc
    return values


def _check_credentials(
    _ctx: click.Context, _param: click.Parameter, value: str | None
) -> SecretRef | None:
    if value is None:
        return None
    try:
        return SecretRef(value)
    except CrawjudTasksError as exc:
        raise click.BadParameter(str(exc)) from exc


def check_run_id_option(
    _ctx: click.Context, _param: click.Parameter, value: str | None
) -> str | None:
    """A ``--run-id`` / ``RUN_ID`` that is a valid run id (else a usage error)."""
    if value is None:
        return None
    try:
        return check_run_id(value)
    except CrawjudTasksError as exc:
        raise click.BadParameter(str(exc)) from exc


def _user(value: str | None) -> int | str:
    if value is None:
        try:
            value = getpass.getuser()
        except (OSError, KeyError) as exc:
            msg = "cannot tell the OS user name: give --user"
            raise fail(msg) from exc
    value = value.strip()
    if not value:
        msg = "Invalid value for '--user': it is empty"
        raise click.UsageError(msg)
    return int(value) if value.isdigit() else value


def progress_for_stdout(*, verbose: bool, failed_lines: int = 20) -> Progress:
    """The renderer on standard output: a redrawn line on a terminal, plain lines otherwise."""
    out = sys.stdout
    try:
        tty = out.isatty()
    except (ValueError, OSError):
        tty = False
    return Progress(out=out, tty=tty, verbose=verbose, failed_lines=failed_lines)


def _refuse_outside_roots(ctx: click.Context, path: Path) -> None:
    """Refuse, before dispatching, an input the worker would refuse: one outside
    ``bots.allowed_roots`` of these settings (the worker's, when they share the environment)."""
    app = load_app(ctx)
    if not has_state(app):
        return
    roots = app_state(app).settings.bots.allowed_roots
    resolved = path.resolve()
    if any(resolved.is_relative_to(Path(root).expanduser().resolve()) for root in roots):
        return
    listed = ", ".join(str(root) for root in roots) or "none set"
    folder = json.dumps([str(resolved.parent)])
    msg = (
        f"{path} is not inside bots.allowed_roots ({listed}), so the worker would refuse the "
        f"run; not dispatched: add its folder to bots.allowed_roots (for the CLI and the worker), "
        f"e.g. CRAWJUD_TASKS_BOTS__ALLOWED_ROOTS='{folder}'"
    )
    raise fail(msg)


# -- the command -------------------------------------------------------------------------------


@click.command()
@click.argument("bot_id", metavar="BOT")
@click.option(
    "--input",
    "input_path",
    required=True,
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    callback=_check_input,
    help="The .csv or .xlsx file of items, inside the worker's bots.allowed_roots.",
)
@click.option("--sheet", default=None, help="The XLSX sheet to read (default: the first).")
@click.option(
    "--user",
    "user",
    default=None,
    help="Whom the run is for (digits are sent as a number). Default: the OS user name.",
)
@click.option(
    "--user-name",
    default=None,
    help="The user's name, for the notifications (default: none; they greet the --user id).",
)
@click.option(
    "--notify",
    multiple=True,
    metavar="ADDRESS",
    callback=_check_notify,
    help="Tell this address when the run starts and ends (repeatable).",
)
@click.option(
    "--option",
    "options",
    multiple=True,
    metavar="KEY=VALUE",
    callback=_parse_options,
    help="A bot option (repeatable); the worker converts the text to the option's type.",
)
@click.option(
    "--credentials",
    metavar="NAME",
    callback=_check_credentials,
    help="The name of the secret the bot logs in with (a SecretRef; never a value).",
)
@click.option(
    "--locale",
    type=click.Choice(["pt_BR", "en"]),
    default="pt_BR",
    show_default=True,
    help="The language of notifications and reports.",
)
@click.option(
    "--run-id",
    default=None,
    callback=check_run_id_option,
    help="The run's id (its idempotency key). Default: the task id.",
)
@click.option(
    "--parallel",
    type=click.IntRange(1, MAX_PARALLELISM),
    default=1,
    show_default=True,
    help="Split the items into N chunks run at once by the workers.",
)
@click.option(
    "--max-failures",
    type=click.IntRange(min=1),
    default=None,
    help="Stop the run (as failed) once this many items have failed.",
)
@click.option("--detach", is_flag=True, help="Print the run id and exit; do not follow the run.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    metavar="SECONDS",
    help="Stop following after this long (the run goes on; exit code 1).",
)
@click.option("--verbose", "-v", is_flag=True, help="Print every event, not only problems.")
@click.pass_context
def run(
    ctx: click.Context,
    *,
    bot_id: str,
    input_path: Path,
    sheet: str | None,
    user: str | None,
    user_name: str | None,
    notify: tuple[str, ...],
    options: dict[str, Cell],
    credentials: SecretRef | None,
    locale: str,
    run_id: str | None,
    parallel: int,
    max_failures: int | None,
    detach: bool,
    timeout: float | None,
    verbose: bool,
) -> None:
    """Run BOT over the items of --input, and follow the run with a progress line.

    Ctrl-C asks whether to cancel the run or just stop watching. Exit codes: 0 completed,
    3 completed with errors, 4 cancelled, 5 failed, 1 refused (or another error), 2 bad usage,
    130 stopped watching (the run goes on).
    """
    user_id = _user(user)
    try:
        parameters = BotParameters(
            input=BotInput.from_file(str(input_path), sheet=sheet),
            credentials=credentials,
            options=options,
            notify=list(notify),
            user_name=user_name,
            locale=cast("Literal['pt_BR', 'en']", locale),
            run_id=run_id,
            max_failures=max_failures,
            parallelism=parallel,
        )
    except CrawjudTasksError as exc:
        raise fail(str(exc)) from exc
    _refuse_outside_roots(ctx, input_path)
    app = load_app(ctx)
    try:
        handle = execute_bot.using(app).delay(bot_id, user_id, parameters)
    except CrawjudTasksError as exc:
        raise fail(f"the run was not dispatched: {exc}") from exc
    the_id = run_id or handle.id
    if detach:
        click.echo(the_id)
        click.echo(f"run {the_id} dispatched; {watch_hint(the_id)}", err=True)
        return
    click.echo(f"run {the_id}: {bot_id} for user {user_id} over {input_path}")
    code = follow_run(
        app, the_id, progress_for_stdout(verbose=verbose), handle=handle, timeout=timeout
    )
    ctx.exit(code)
