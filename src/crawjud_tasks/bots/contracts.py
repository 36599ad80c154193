"""The bot-run contract and its payload types: what a host imports to run bots.

Cheap to import (no bot code, no spreadsheet reader): a host service dispatches with these, and
the worker implements them.

Example::

    from crawjud_tasks.bots.contracts import BotInput, BotParameters, SecretRef, execute_bot

    handle = execute_bot.delay(
        "projudi.capa",
        user_id=7,
        parameters=BotParameters(
            input=BotInput.from_file("/srv/crawjud/inputs/capa-2026-11.xlsx"),
            credentials=SecretRef("projudi-ana"),
            notify=["ana@example.org"],
            run_id="exec-1842",
        ),
    )
    result = handle.get(timeout=3600)  # BotRunResult
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import itertools
import re
from collections.abc import Mapping, Sequence
from typing import Literal, cast

from crawjud_tasks._contracts import task_contract
from crawjud_tasks.errors import PayloadError

__all__ = [
    "MAX_INLINE_ROWS",
    "MAX_PARALLELISM",
    "BotInput",
    "BotParameters",
    "BotRunResult",
    "Cell",
    "ChunkResult",
    "RunCounts",
    "RunStatus",
    "SecretRef",
    "execute_bot",
    "finish_run",
    "notification_failed",
    "run_chunk",
    "run_failed",
]

#: A spreadsheet cell as it travels: text, a number, a boolean or empty.
Cell = str | int | float | bool | None
#: The most rows a run may carry inline in its message; larger inputs go in a file.
MAX_INLINE_ROWS = 1000
#: The most chunks a parallel run is split into.
MAX_PARALLELISM = 64
#: Words of option names that say credential: such a value must come as a :class:`SecretRef`.
_CREDENTIAL_WORDS = frozenset(
    (
        "pass",
        "password",
        "passwd",
        "passphrase",
        "pwd",
        "senha",
        "secret",
        "token",
        "credential",
        "credentials",
        "credencial",
        "credenciais",
        "cookie",
        "bearer",
        "otp",
        "totp",
        "pfx",
        "p12",
        "apikey",
        "sshkey",
        "privatekey",
        "accesskey",
    )
)
#: Pairs of words that say credential together (``api_key``, ``sshKey``, ``client-secret``).
_CREDENTIAL_PAIRS = frozenset(
    {("api", "key"), ("ssh", "key"), ("private", "key"), ("access", "key"), ("session", "id")}
)
_WORD = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")
_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}")
_SECRET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


@dataclasses.dataclass(frozen=True, slots=True)
class SecretRef:
    """A secret by name, resolved inside the worker by a secret provider; never its value.

    The names are letters, digits, ``_``, ``.`` and ``-`` (e.g. ``"projudi-ana"``): the
    environment provider reads ``CRAWJUD_SECRET_PROJUDI_ANA``, the file provider reads the file
    ``projudi-ana`` in its folder.
    """

    name: str

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _SECRET_NAME.fullmatch(self.name):  # pyright: ignore[reportUnnecessaryIsInstance]  (checked at run time for untyped callers)
            msg = (
                f"a SecretRef name is letters, digits, '_', '.' and '-' (at most 128), "
                f"got {self.name!r}"
            )
            raise PayloadError(msg)


def _no_rows() -> tuple[dict[str, Cell], ...]:
    return ()


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class BotInput:
    """The items of a run: a CSV or XLSX file inside the allowed roots, or a few rows inline.

    Build it with :meth:`from_file` or :meth:`inline`.
    """

    #: A ``.csv`` or ``.xlsx`` file on the worker's machine (or a shared store), inside
    #: ``bots.allowed_roots``.
    file: str | None = None
    #: The spreadsheet's sheet to read (XLSX; default: the first).
    sheet: str | None = None
    #: Rows given inline (at most :data:`MAX_INLINE_ROWS`), each a mapping column -> cell.
    rows: tuple[dict[str, Cell], ...] = dataclasses.field(default_factory=_no_rows)

    def __post_init__(self) -> None:
        if self.file is None and not self.rows:
            msg = (
                "a bot input needs a file or inline rows: use BotInput.from_file(path) or "
                "BotInput.inline(rows)"
            )
            raise PayloadError(msg)
        if self.file is not None and self.rows:
            msg = "a bot input is a file or inline rows, not both"
            raise PayloadError(msg)
        if len(self.rows) > MAX_INLINE_ROWS:
            msg = (
                f"{len(self.rows)} inline rows is more than {MAX_INLINE_ROWS}; write them to a CSV "
                "or XLSX file inside bots.allowed_roots and pass BotInput.from_file(path)"
            )
            raise PayloadError(msg)

    @classmethod
    def from_file(cls, path: str, *, sheet: str | None = None) -> BotInput:
        """Items read from a ``.csv`` or ``.xlsx`` file (one item per row under the header)."""
        return cls(file=str(path), sheet=sheet)

    @classmethod
    def inline(cls, rows: Sequence[Mapping[str, Cell]]) -> BotInput:
        """Items given in the message itself (at most :data:`MAX_INLINE_ROWS` rows)."""
        return cls(rows=tuple(dict(row) for row in rows))


def _no_options() -> dict[str, Cell]:
    return {}


def _no_recipients() -> list[str]:
    return []


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class BotParameters:
    """What a run is given, besides the bot and the user."""

    #: The items to process.
    input: BotInput
    #: The credentials the bot logs in with, by reference (resolved on the worker).
    credentials: SecretRef | None = None
    #: The bot's own options, checked against the options type the bot declares.
    options: dict[str, Cell] = dataclasses.field(default_factory=_no_options)
    #: Who is told when the run starts and ends.
    notify: list[str] = dataclasses.field(default_factory=_no_recipients)
    #: The user's name as notifications greet them (default: the user id).
    user_name: str | None = None
    #: The language of notifications and reports.
    locale: Literal["pt_BR", "en"] = "pt_BR"
    #: The host's id for this run (e.g. its execution id); default: the task id. It is also the
    #: run's idempotency key: a second dispatch with the same id never runs the bot twice.
    run_id: str | None = None
    #: Stop the run (as failed, with a partial report) once this many items have failed.
    max_failures: int | None = None
    #: Split the items into this many chunks, run at once by any workers (a chord of chunk
    #: tasks, then one report); ``1`` runs them in order in one task.
    parallelism: int = 1

    def __post_init__(self) -> None:
        credentials = cast("object", self.credentials)  # untyped callers pass anything
        if credentials is not None and not isinstance(credentials, SecretRef):
            msg = (
                "credentials takes SecretRef(name), the name a secret provider knows the secret "
                f"by, never the secret itself; got a {type(credentials).__name__}"
            )
            raise PayloadError(msg)
        for name, value in self.options.items():
            if _looks_like_a_credential(name) and value not in (None, ""):
                msg = (
                    f"option {name!r} looks like a credential; never send one in a message: "
                    "store it with a secret provider and pass credentials=SecretRef(name)"
                )
                raise PayloadError(msg)
        if self.run_id is not None and not _RUN_ID.fullmatch(self.run_id):
            msg = (
                "run_id is letters, digits, '_', '.', ':' and '-' (at most 128, starting with a "
                f"letter or digit), got {self.run_id!r}"
            )
            raise PayloadError(msg)
        if not 1 <= self.parallelism <= MAX_PARALLELISM:
            msg = f"parallelism must be 1 to {MAX_PARALLELISM}, got {self.parallelism!r}"
            raise PayloadError(msg)
        if self.max_failures is not None and self.max_failures < 1:
            msg = f"max_failures must be >= 1 (or None), got {self.max_failures!r}"
            raise PayloadError(msg)


def _looks_like_a_credential(name: str) -> bool:
    words = [word.lower() for word in _WORD.findall(name)]
    return any(word in _CREDENTIAL_WORDS for word in words) or any(
        pair in _CREDENTIAL_PAIRS for pair in itertools.pairwise(words)
    )


class RunStatus(str, enum.Enum):
    """How a run ended."""

    #: Every item succeeded (or was skipped).
    COMPLETED = "completed"
    #: The run went through every item, and some failed.
    COMPLETED_WITH_ERRORS = "completed_with_errors"
    #: The run was cancelled; what was done is in the report.
    CANCELLED = "cancelled"
    #: The run stopped on a fatal error or after ``max_failures``; what was done is reported.
    FAILED = "failed"


@dataclasses.dataclass(frozen=True, slots=True)
class RunCounts:
    """Items of a run by outcome."""

    total: int = 0
    succeeded: int = 0
    failed: int = 0
    skipped: int = 0

    @property
    def done(self) -> int:
        """Items with an outcome."""
        return self.succeeded + self.failed + self.skipped

    @property
    def remaining(self) -> int:
        """Items without an outcome yet."""
        return max(0, self.total - self.done)


def _no_reasons() -> list[str]:
    return []


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class BotRunResult:
    """How a run went."""

    run_id: str
    bot: str
    user_id: int | str
    status: RunStatus
    counts: RunCounts
    started_at: dt.datetime
    finished_at: dt.datetime
    #: Where the report is (a path for the local report store, else the store's location).
    report: str | None = None
    #: Why the run failed (fatal error, ``max_failures``), when it did.
    error: str | None = None
    #: The first few failed items' reasons (``row N: reason``).
    error_sample: list[str] = dataclasses.field(default_factory=_no_reasons)

    @property
    def seconds(self) -> float:
        """How long the run took."""
        return (self.finished_at - self.started_at).total_seconds()


@task_contract("bots.execute_bot", delivery="at_least_once", max_deliveries=5)
def execute_bot(bot_id: str, user_id: int | str, parameters: BotParameters) -> BotRunResult:
    """Run the bot ``bot_id`` for ``user_id`` over the parameters' input.

    Initialise (check the parameters against the bot's options, read the input, resolve the
    secrets, take the run's lease, emit "started"), process each item (checkpointed; resumed
    after a worker dies), write the report, emit "finished". Raises ``UnknownBotError`` or
    ``BotParameterError`` before anything runs; a run that fails or is cancelled returns its
    result with that status.
    """
    raise NotImplementedError


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ChunkResult:
    """How one chunk of a parallel run ended (its items' outcomes are in the checkpoint)."""

    chunk: int
    #: ``completed``, ``cancelled`` or ``failed`` (a fatal error, which stops the other chunks).
    status: RunStatus
    error: str | None = None
    #: The chunk's items by outcome (``total`` is 0): the run's counts are their sum.
    counts: RunCounts = dataclasses.field(default_factory=RunCounts)
    #: The columns the bot returned for the chunk's successes, first seen first.
    returned: list[str] = dataclasses.field(default_factory=_no_reasons)


@task_contract("bots.run_chunk", delivery="at_least_once", max_deliveries=5)
def run_chunk(  # noqa: PLR0917  (a task's arguments travel positionally in its message)
    bot_id: str,
    user_id: int | str,
    parameters: BotParameters,
    run_id: str,
    task_id: str,
    chunk: int,
    start: int,
    stop: int,
) -> ChunkResult:
    """A stage of a parallel run: process the items ``start`` to ``stop`` (checkpointed,
    resumed, cancellable like a whole run). ``execute_bot`` sends these; hosts need not."""
    raise NotImplementedError


@task_contract("bots.finish_run", delivery="at_least_once", max_deliveries=5)
def finish_run(  # noqa: PLR0917  (a task's arguments travel positionally in its message)
    chunks: list[ChunkResult],
    bot_id: str,
    user_id: int | str,
    parameters: BotParameters,
    run_id: str,
    task_id: str,
    started_at: dt.datetime,
) -> BotRunResult:
    """The last stage of a parallel run: merge the chunks, write the report, emit "finished",
    notify, store the result. ``execute_bot`` sends it as the body of the chunks' chord."""
    raise NotImplementedError


@task_contract("bots.run_failed", delivery="at_least_once", max_deliveries=5)
def run_failed(  # noqa: PLR0917  (a task's arguments travel positionally in its message)
    failed_task_id: str,
    bot_id: str,
    user_id: int | str,
    parameters: BotParameters,
    run_id: str,
    task_id: str,
    chunks: int,
    started_at: dt.datetime,
) -> None:
    """The error callback of a parallel run's chord (``failed_task_id`` is its body's id): a
    chunk failed outright (a poison message, say), so the run ends ``failed`` naming the chunk
    and its reason, with a report of what was done. ``execute_bot`` sends it; hosts need not."""
    raise NotImplementedError


@task_contract("bots.notification_failed")
def notification_failed(task_id: str, run_id: str, template: str) -> None:
    """Record in run ``run_id``'s events that its ``template`` notification was not sent: the
    error callback of the mail task ``task_id`` (which gives its id as the first argument). The
    runner sends it with each notification; hosts need not."""
    raise NotImplementedError
