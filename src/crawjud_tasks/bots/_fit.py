"""Whether a run's parameters fit its bot: its options and the input's columns."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import msgspec

from crawjud_tasks.bots._bot import NoOptions
from crawjud_tasks.errors import BotParameterError

__all__ = ["bot_options", "check_columns", "checkpoint_class"]


def bot_options(bot_id: str, bot: Any, given: Mapping[str, Any]) -> Any:
    """The run's options converted into the bot's options dataclass."""
    kind: type[Any] = getattr(bot, "options", NoOptions)
    if kind is NoOptions or not dataclasses.is_dataclass(kind):
        if given:
            msg = f"bot {bot_id!r} takes no options, got {', '.join(sorted(given))}"
            raise BotParameterError(msg)
        return NoOptions()
    names = [field.name for field in dataclasses.fields(kind)]
    unknown = sorted(set(given) - set(names))
    if unknown:
        msg = (
            f"bot {bot_id!r} has no option {', '.join(map(repr, unknown))}; its options are "
            f"{', '.join(names) or 'none'}"
        )
        raise BotParameterError(msg)
    try:
        return msgspec.convert(dict(given), kind, strict=False)
    except msgspec.ValidationError as exc:
        msg = f"bot {bot_id!r}: bad options: {exc}"
        raise BotParameterError(msg) from None


def checkpoint_class(bot_id: str, bot: Any) -> Literal["batch", "each"]:
    """The bot's ``checkpoint`` class: ``"batch"`` (the default) or ``"each"``."""
    mode: object = getattr(bot, "checkpoint", "batch")
    if mode == "batch":
        return "batch"
    if mode == "each":
        return "each"
    msg = f"bot {bot_id!r}: checkpoint is 'batch' or 'each', got {mode!r}"
    raise BotParameterError(msg)


def check_columns(bot_id: str, bot: Any, columns: Sequence[str]) -> None:
    """Whether ``columns`` hold every column the bot requires."""
    required: Sequence[str] = getattr(bot, "required_columns", ())
    if not required:
        return
    present = set(columns)
    missing = [column for column in required if column not in present]
    if missing:
        msg = (
            f"bot {bot_id!r} needs the column(s) {', '.join(missing)} in its input; the input "
            f"has {', '.join(sorted(present)) or 'no columns'}"
        )
        raise BotParameterError(msg)
