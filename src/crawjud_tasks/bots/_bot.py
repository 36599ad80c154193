"""What a bot is: the protocol a host's bot implements, its items and their outcomes."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Literal, Protocol, TypeVar

from crawjud_tasks._retry import RetryPolicy
from crawjud_tasks.bots.contracts import Cell

if TYPE_CHECKING:
    from crawjud_tasks.bots._context import RunContext

__all__ = [
    "BaseBot",
    "Bot",
    "Item",
    "ItemOutcome",
    "ItemRecord",
    "ItemStatus",
    "NoOptions",
]

OptionsT = TypeVar("OptionsT")
OptionsT_contra = TypeVar("OptionsT_contra", contravariant=True)
ItemStatus = Literal["succeeded", "failed", "skipped"]


@dataclasses.dataclass(frozen=True, slots=True)
class Item:
    """One row of a run's input."""

    #: Position in the input, from 0.
    index: int
    #: The spreadsheet row it came from (the header is row 1, so the first item is row 2).
    row: int
    #: The row's cells by column name (names upper case and trimmed).
    data: Mapping[str, Cell]

    def __getitem__(self, column: str) -> Cell:
        return self.data[column]

    def get(self, column: str, default: Cell = None) -> Cell:
        """The cell of ``column``, or ``default`` if the input has no such column."""
        return self.data.get(column, default)


def _no_data() -> dict[str, Cell]:
    return {}


@dataclasses.dataclass(frozen=True, slots=True)
class ItemOutcome:
    """What ``process`` returns for an item: it succeeded (with data for the report) or was
    skipped. A failed item is an :class:`~crawjud_tasks.errors.ItemError` raised instead."""

    status: Literal["succeeded", "skipped"]
    #: Columns added to the item's row in the successes sheet.
    data: Mapping[str, Cell] = dataclasses.field(default_factory=_no_data)
    #: A line for the run's log (and, for a skip, the reason).
    message: str | None = None

    @classmethod
    def success(
        cls, data: Mapping[str, Cell] | None = None, *, message: str | None = None
    ) -> ItemOutcome:
        """The item succeeded; ``data`` goes to its row in the successes sheet."""
        return cls("succeeded", dict(data or {}), message)

    @classmethod
    def skipped(cls, reason: str) -> ItemOutcome:
        """The item needs no work (already done, say); counted apart from successes."""
        return cls("skipped", {}, reason)


@dataclasses.dataclass(frozen=True, slots=True)
class ItemRecord:
    """An item's recorded outcome: a line of the checkpoint and a row of the report."""

    index: int
    row: int
    status: ItemStatus
    #: The item's input cells.
    input: Mapping[str, Cell]
    #: What the bot returned for it (successes).
    data: Mapping[str, Cell]
    #: Why it failed or was skipped.
    reason: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class NoOptions:
    """The options of a bot that takes none: any option given is refused."""


class Bot(Protocol[OptionsT_contra]):
    """A bot: host code that processes a run's items one by one.

    A bot class is registered under a key (``projudi.capa``); every run makes its own instance,
    and every piece of per-run state lives in the :class:`RunContext` it is given.

    Class attributes the runtime reads (all optional: :class:`BaseBot` gives defaults):
    ``options`` (a dataclass the run's options are checked and converted into), ``retry`` (the
    :class:`RetryPolicy` that retries an item's transient errors inline) and
    ``required_columns`` (columns the input must have) and ``checkpoint`` (``"batch"`` or
    ``"each"``: how items are checkpointed).
    """

    def setup(self, ctx: RunContext[OptionsT_contra]) -> None:
        """Prepare the run (log in, open a browser...); raise ``FatalBotError`` if it cannot."""
        ...

    def process(self, item: Item, ctx: RunContext[OptionsT_contra]) -> ItemOutcome:
        """Process one item; raise ``ItemError`` for a failed item."""
        ...

    def teardown(self, ctx: RunContext[OptionsT_contra]) -> None:
        """Release what ``setup`` took; called after every run that set up, however it ended."""
        ...


class BaseBot(Generic[OptionsT]):
    """A convenient base for bots: no-op ``setup`` and ``teardown``, no options, the court-site
    retry policy. Subclasses implement ``process``."""

    #: The bot's name in notifications and reports (default: its key).
    title: ClassVar[str] = ""
    #: The dataclass the run's ``options`` are converted into.
    options: ClassVar[type[Any]] = NoOptions
    #: Retries an item's transient errors inline.
    retry: ClassVar[RetryPolicy] = RetryPolicy.court_site()
    #: Columns the input must have (upper case).
    required_columns: ClassVar[tuple[str, ...]] = ()
    #: How items are checkpointed: ``"batch"`` (items' records sent to Redis a few ms or
    #: ``bots.checkpoint_batch`` items at a time; after a kill, the items of the last window
    #: are done again) or ``"each"`` (each item's record sent as it completes, for bots whose
    #: items have external effects). See docs/bots.md.
    checkpoint: ClassVar[Literal["batch", "each"]] = "batch"

    def setup(self, ctx: RunContext[OptionsT]) -> None:
        """Nothing to prepare."""

    def process(self, item: Item, ctx: RunContext[OptionsT]) -> ItemOutcome:
        """Process one item; raise ``ItemError`` for a failed item."""
        raise NotImplementedError

    def teardown(self, ctx: RunContext[OptionsT]) -> None:
        """Nothing to release."""
