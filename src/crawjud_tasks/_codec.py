"""The payload codec of a contract: typed values to JSON data and back, by msgspec.

On send, arguments are turned into JSON data (``msgspec.to_builtins``: dataclasses and
TypedDicts become objects, enums their values, datetimes ISO strings). On the worker, each
argument is rebuilt into its declared type (``msgspec.convert``, strict: a string is never taken
for a number); on the host, the result is rebuilt the same way. A value that does not fit raises
:class:`PayloadError` naming the field, the expected and the received type.

Type hints are resolved on first use, not at declaration, so a contract may name a type that its
module defines further down.
"""

from __future__ import annotations

import inspect
import re
import typing
from collections.abc import Callable
from typing import Any

import msgspec

from crawjud_tasks.errors import ContractError, PayloadError

__all__ = ["ContractCodec", "encode"]

_NONE_TYPES: tuple[object, ...] = (None, type(None))


def encode(value: Any) -> Any:
    """``value`` as JSON data (dicts, lists, strings, numbers, booleans, None)."""
    try:
        return msgspec.to_builtins(value)
    except (TypeError, msgspec.EncodeError) as exc:
        msg = (
            f"cannot send {type(value).__name__} as JSON ({exc}); "
            "use a dataclass, a TypedDict, or plain data"
        )
        raise PayloadError(msg) from exc


class ContractCodec:
    """Checks and converts one contract's arguments and result."""

    __slots__ = ("_hints", "_name", "_signature", "func")

    def __init__(self, func: Callable[..., Any], name: str) -> None:
        self.func = func
        self._name = name
        self._signature: inspect.Signature | None = None
        self._hints: dict[str, Any] | None = None

    @property
    def signature(self) -> inspect.Signature:
        """The contract's parameters (names, kinds, defaults), without annotations."""
        if self._signature is None:
            signature = inspect.signature(self.func)
            self._signature = signature.replace(
                parameters=[p.replace(annotation=p.empty) for p in signature.parameters.values()],
                return_annotation=signature.empty,
            )
        return self._signature

    @property
    def hints(self) -> dict[str, Any]:
        """The declared types of the parameters (``*args`` as a tuple, ``**kwargs`` as a dict)
        and of ``return``."""
        if self._hints is None:
            try:
                hints = typing.get_type_hints(self.func)
            except Exception as exc:
                msg = f"the contract {self._name!r} has annotations that cannot be resolved: {exc}"
                raise ContractError(msg) from exc
            for parameter in inspect.signature(self.func).parameters.values():
                declared = hints.get(parameter.name, Any)
                if parameter.kind is parameter.VAR_POSITIONAL:
                    hints[parameter.name] = tuple[declared, ...]  # type: ignore[valid-type]  # built from a runtime hint
                elif parameter.kind is parameter.VAR_KEYWORD:
                    hints[parameter.name] = dict[str, declared]  # type: ignore[valid-type]  # built from a runtime hint
                else:
                    hints[parameter.name] = declared
            hints.setdefault("return", Any)
            self._hints = hints
        return self._hints

    @property
    def returns_none(self) -> bool:
        """Whether the contract returns nothing (its result is then never stored)."""
        return self.hints["return"] in _NONE_TYPES

    def check_declaration(self) -> None:
        """Resolve the hints now and refuse parameters that cannot be sent as JSON."""
        for name, hint in self.hints.items():
            try:
                msgspec.inspect.type_info(hint)
            except (TypeError, ValueError) as exc:
                where = "the return type" if name == "return" else f"parameter {name!r}"
                msg = f"the contract {self._name!r} cannot send {where} as JSON: {exc}"
                raise ContractError(msg) from exc

    def bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> inspect.BoundArguments:
        """Bind call arguments to the contract's parameters.

        Raises:
            TypeError: they do not fit (missing, unexpected or too many arguments).
        """
        return self.signature.bind(*args, **kwargs)

    def decode_arguments(
        self, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """Rebuild a message's arguments into the declared types.

        Raises:
            PayloadError: an argument is missing, unknown or of the wrong type.
        """
        try:
            bound = self.signature.bind(*args, **kwargs)
        except TypeError as exc:
            msg = f"{self._name}: {exc} (the contract takes {self.signature})"
            raise PayloadError(msg) from None
        hints = self.hints
        arguments = bound.arguments
        for name, value in arguments.items():
            arguments[name] = self._convert(value, hints[name], f"argument {name!r}", name)
        return bound.args, bound.kwargs

    def decode_result(self, value: Any) -> Any:
        """Rebuild a result into the declared return type.

        Raises:
            PayloadError: the result does not fit the declared type.
        """
        return self._convert(value, self.hints["return"], "the result", "result")

    def _convert(self, value: Any, hint: Any, what: str, root: str) -> Any:
        if hint is Any:
            return value
        try:
            return msgspec.convert(value, hint)
        except msgspec.ValidationError as exc:
            msg = f"{self._name}: {what} does not fit the contract: {describe(exc, root)}"
            raise PayloadError(msg) from None


_AT = re.compile(r" - at `\$(?P<path>[^`]*)`$")


def describe(exc: msgspec.ValidationError, root: str) -> str:
    """msgspec's message with its ``$`` path spelled from ``root`` (``params.depth``)."""
    text = str(exc)
    match = _AT.search(text)
    if match is None:
        return text
    return f"{text[: match.start()]} (at `{root}{match['path']}`)"
