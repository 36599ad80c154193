"""Bounded rendering: a host template cannot exhaust the worker that renders it.

Jinja2's sandbox keeps a template away from Python's internals, but not away from memory and
time. Here each render is bounded:

- string, list and number building: ``*`` and ``**`` are checked before they run (``'x' * 2e8``,
  ``10 ** 10**7``), and so are the widths of the padding filters (``center``, ``indent``) and of
  ``%`` formats;
- output: the render stops once it has produced ``max_bytes`` characters;
- time: the template's own code is traced while it renders, and stops past ``seconds`` (nested
  loops of any kind, not only ``range``).

A limit reached raises :class:`RenderLimitError`, which the caller reports as a broken template.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Callable, Iterable
from types import FrameType
from typing import Any, Literal

from jinja2.runtime import Context
from jinja2.sandbox import SandboxedEnvironment

__all__ = ["BoundedEnvironment", "RenderLimitError", "render_bounded"]

#: The most items (characters, list members) one ``*`` may build.
MAX_REPEAT = 1_000_000
#: The most digits one ``**`` may build.
MAX_POWER_DIGITS = 10_000
#: The widest a padding filter or a ``%`` format may pad.
MAX_WIDTH = 10_000
#: Template lines run between two looks at the clock.
_CHECK_EVERY = 512
#: A ``%`` conversion: its width and precision.
_Event = Literal["call", "line", "return", "exception", "opcode"]
_PERCENT = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\d+)?(?:\.(\d+))?[a-zA-Z%]")


class RenderLimitError(Exception):
    """A render went past one of its bounds (the message says which)."""


class BoundedEnvironment(SandboxedEnvironment):
    """A sandboxed environment whose ``*``, ``**``, padding filters and ``%`` formats are
    bounded; :func:`render_bounded` bounds a render's output and time."""

    intercepted_binops = frozenset({"*", "**", "%"})

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.filters["center"] = _bounded_center
        self.filters["indent"] = _bounded_filter(self.filters["indent"], "indent")
        self.filters["format"] = _bounded_filter(self.filters["format"], "format")

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            _check_repeat(left, right)
        elif operator == "**":
            _check_power(left, right)
        elif operator == "%" and isinstance(left, str):
            _check_format(left)
        return super().call_binop(context, operator, left, right)


def render_bounded(
    chunks: Iterable[str], *, owner: SandboxedEnvironment, max_bytes: int, seconds: float
) -> str:
    """Join a template's generated ``chunks``, stopping at ``max_bytes`` or ``seconds``.

    Raises:
        RenderLimitError: the output grew past ``max_bytes``, or the render took longer than
            ``seconds``.
    """
    deadline = time.monotonic() + seconds
    previous = sys.gettrace()
    lines = 0

    def in_template(frame: FrameType, event: _Event, arg: Any) -> Any:
        nonlocal lines
        lines += 1
        if lines % _CHECK_EVERY == 0 and time.monotonic() > deadline:
            msg = f"it took longer than {seconds} s to render (a loop that does not end?)"
            raise RenderLimitError(msg)
        return in_template

    def on_call(frame: FrameType, event: _Event, arg: Any) -> Any:
        if frame.f_globals.get("environment") is owner:
            return in_template
        return previous(frame, event, arg) if previous is not None else None

    parts: list[str] = []
    size = 0
    sys.settrace(on_call)
    try:
        for chunk in chunks:
            size += len(chunk)
            if size > max_bytes:
                msg = f"its output grew past {max_bytes:,} characters"
                raise RenderLimitError(msg)
            parts.append(chunk)
    finally:
        sys.settrace(previous)
    return "".join(parts)


def _check_repeat(left: Any, right: Any) -> None:
    for sequence, times in ((left, right), (right, left)):
        if isinstance(sequence, str | bytes | list | tuple) and isinstance(times, int):
            items = len(sequence) * times  # pyright: ignore[reportUnknownArgumentType]  (a template's list holds anything)
            if items > MAX_REPEAT:
                msg = f"a '*' would build {items:,} items (at most {MAX_REPEAT:,})"
                raise RenderLimitError(msg)
            return


def _check_power(left: Any, right: Any) -> None:
    if isinstance(left, int) and isinstance(right, int) and abs(left) > 1 and right > 0:
        digits = right * max(abs(left).bit_length(), 1) * 0.30103
        if digits > MAX_POWER_DIGITS:
            msg = f"a '**' would build a number of about {digits:,.0f} digits"
            raise RenderLimitError(msg)


def _check_width(width: Any, what: str) -> None:
    if isinstance(width, int | float) and width > MAX_WIDTH:
        msg = f"{what} would pad to {width:,} characters (at most {MAX_WIDTH:,})"
        raise RenderLimitError(msg)


def _check_format(text: str) -> None:
    for match in _PERCENT.finditer(text):
        for number in match.groups():
            if number is not None:
                _check_width(int(number), "a '%' format")


def _bounded_center(value: Any, width: int = 80) -> str:
    _check_width(width, "center")
    return str(value).center(width)


def _bounded_filter(original: Callable[..., Any], name: str) -> Callable[..., Any]:
    def bounded(value: Any, *args: Any, **kwargs: Any) -> Any:
        if name == "format":
            if isinstance(value, str):
                _check_format(value)  # the arguments are values to format, not widths
        else:
            for width in (*args, *kwargs.values()):
                if not isinstance(width, bool):
                    _check_width(width, name)
        return original(value, *args, **kwargs)

    return bounded
