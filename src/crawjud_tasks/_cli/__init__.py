"""The ``crawjud-tasks`` command line (click, which Celery already brings).

The command line is a surface: it uses a domain only through the domain's public modules
(``crawjud_tasks.bots``, ``crawjud_tasks.bots.contracts``, ``crawjud_tasks.mail``...), public names
through the package root (``crawjud_tasks``) and ``crawjud_tasks.errors``, and, for what the
library keeps internal, the top-level modules of the assembly, runtime and core layers
(``crawjud_tasks._state``, ``_worker_process``, ``_redact``, ``_metadata``). Never a domain's
``_modules``: what a command needs from a domain is added to that domain's public API. The
import-linter contracts in ``pyproject.toml`` (``nox -s lint``) check it.

``crawjud-tasks health ...`` is dispatched before the other commands are imported: a container
probe runs every few seconds and must not load Celery (see ``_health``).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from crawjud_tasks._cli._commands import cli

__all__ = ["cli", "main"]


def main() -> None:
    """Entry point of the ``crawjud-tasks`` script."""
    if sys.argv[1:2] == ["health"]:
        from crawjud_tasks._cli._health import health  # noqa: PLC0415  (no Celery import)

        health(args=sys.argv[2:], prog_name="crawjud-tasks health")
        return
    from crawjud_tasks._cli._commands import cli  # noqa: PLC0415

    cli(prog_name="crawjud-tasks")


def __getattr__(name: str) -> Any:
    if name == "cli":
        from crawjud_tasks._cli._commands import cli  # noqa: PLC0415

        return cli
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)
