"""The run context: every piece of one run's state, handed to the bot's methods."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Generic, Literal, Protocol, TypeVar, final

if TYPE_CHECKING:
    from crawjud_tasks._secret import Secret
    from crawjud_tasks.bots.contracts import BotParameters

__all__ = ["LogLevel", "RunContext", "RunLog"]

OptionsT_co = TypeVar("OptionsT_co", covariant=True)
#: The levels of a run's log lines (CrawJUD's message types).
LogLevel = Literal["info", "warning", "error", "success"]


class _LogSink(Protocol):
    def __call__(self, level: LogLevel, message: str, row: int | None) -> None: ...


@final
class RunLog:
    """The run's live log: each line is an event of the run's stream (and a worker log line).

    Secret values the run resolved are masked in every line.
    """

    __slots__ = ("_sink",)

    def __init__(self, sink: _LogSink) -> None:
        self._sink = sink

    def info(self, message: str, *, row: int | None = None) -> None:
        """A line of progress."""
        self._sink("info", message, row)

    def warning(self, message: str, *, row: int | None = None) -> None:
        """Something looks wrong, and the run goes on."""
        self._sink("warning", message, row)

    def error(self, message: str, *, row: int | None = None) -> None:
        """Something failed."""
        self._sink("error", message, row)

    def success(self, message: str, *, row: int | None = None) -> None:
        """Something was done."""
        self._sink("success", message, row)


@final
class RunContext(Generic[OptionsT_co]):
    """One run's state: who, what, with which options and secrets, and whether to stop.

    A bot keeps its per-run state here (or in locals), never on its class or instance
    attributes shared with other runs: two runs of one bot may run at once in one process.
    """

    __slots__ = (
        "_cancel",
        "_options",
        "_secrets",
        "bot_id",
        "log",
        "output_dir",
        "parameters",
        "resumed_at",
        "run_id",
        "state",
        "user_id",
    )

    def __init__(
        self,
        *,
        run_id: str,
        bot_id: str,
        user_id: int | str,
        parameters: BotParameters,
        options: OptionsT_co,
        secrets: Mapping[str, Secret],
        output_dir: Path,
        log: RunLog,
        cancel: threading.Event,
        resumed_at: int,
    ) -> None:
        #: The run's id (the host's, or the task id).
        self.run_id = run_id
        #: The bot's registry key.
        self.bot_id = bot_id
        #: Who started the run.
        self.user_id = user_id
        #: The parameters as dispatched.
        self.parameters = parameters
        #: The run's live log.
        self.log = log
        #: A folder of this run's own for working files (downloads, screenshots).
        self.output_dir = output_dir
        #: Items already done when this run started: ``0``, or where a resumed run picks up.
        self.resumed_at = resumed_at
        #: Free per-run state for the bot (a session object, counters): lives as long as the run
        #: in this process.
        self.state: dict[str, object] = {}
        self._options = options
        self._secrets = dict(secrets)
        self._cancel = cancel

    @property
    def options(self) -> OptionsT_co:
        """The run's options, converted into the bot's options type."""
        return self._options

    @property
    def credentials(self) -> Secret | None:
        """The secret the parameters' ``credentials`` reference resolved to (``None``: none)."""
        return self._secrets.get("credentials")

    def secret(self, name: str) -> Secret:
        """A secret the run resolved, by its role (``"credentials"``).

        Raises:
            KeyError: the run resolved no secret of that role.
        """
        return self._secrets[name]

    @property
    def cancelled(self) -> bool:
        """Whether the run was asked to stop (a long ``process`` may check it and return)."""
        return self._cancel.is_set()

    @property
    def resumed(self) -> bool:
        """Whether this run picks up a run whose worker died."""
        return self.resumed_at > 0

    def __repr__(self) -> str:
        return f"RunContext(run_id={self.run_id!r}, bot_id={self.bot_id!r})"
