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
from collections.abc import Callable, Iterator
from inspect import Parameter
from typing import Any

import msgspec

from crawjud_tasks.errors import ContractError, PayloadError

__all__ = ["MAX_ARGUMENT_BYTES", "ContractCodec", "encode"]

_NONE_TYPES: tuple[object, ...] = (None, type(None))
#: The most bytes a call's arguments may take as JSON: larger data goes in a file, passed by
#: reference (a path inside an allowed root), never in a message.
MAX_ARGUMENT_BYTES = 8 * 1024 * 1024
#: A call of at most this many arguments, each (and its name) a short string or a scalar, is
#: plainly under :data:`MAX_ARGUMENT_BYTES` (16 x 2 x (6 JSON bytes x 4,096 characters + 2) is
#: under 1 MiB): its arguments are not encoded once more to be weighed.
_FEW_ARGUMENTS = 16
_SHORT_TEXT = 4096
_SHORT_INT = 2**63
_SCALARS = frozenset({bool, float, type(None)})


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

    __slots__ = ("_hints", "_name", "_positional_names", "_signature", "func")

    def __init__(self, func: Callable[..., Any], name: str) -> None:
        self.func = func
        self._name = name
        self._signature: inspect.Signature | None = None
        self._hints: dict[str, Any] | None = None
        self._positional_names: tuple[str, ...] | None = None

    @property
    def signature(self) -> inspect.Signature:
        """The contract's parameters (names, kinds, defaults), without annotations."""
        if self._signature is None:
            signature = inspect.signature(self.func)
            parameters = signature.parameters.values()
            kinds = (Parameter.POSITIONAL_ONLY, Parameter.POSITIONAL_OR_KEYWORD)
            self._positional_names = (
                None
                if any(p.kind is Parameter.VAR_POSITIONAL for p in parameters)
                else tuple(p.name for p in parameters if p.kind in kinds)
            )
            self._signature = signature.replace(
                parameters=[p.replace(annotation=p.empty) for p in parameters],
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

    def encode_call(
        self, args: tuple[Any, ...], kwargs: dict[str, Any], *, partial: bool = False
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """The arguments of a call as JSON data, checked as the worker will check them.

        Each argument is converted back to its declared type now, so that a wrong type is
        refused on the host (naming the argument and the field), not by the worker. ``partial``:
        the first argument is missing (the previous step of a chain gives it).

        Raises:
            PayloadError: an argument cannot be sent as JSON, does not fit its declared type, or
                the arguments take more than :data:`MAX_ARGUMENT_BYTES`.
        """
        if not args and not kwargs:
            return (), {}  # nothing to check, nothing to weigh
        encoded_args = tuple(self._encode_all(args)) if args else ()
        encoded_kwargs: dict[str, Any] = self._encode_all(kwargs) if kwargs else {}
        hints = self.hints
        small = True
        for name, value in self._named(encoded_args, encoded_kwargs, partial=partial):
            hint = hints[name]
            kind = value.__class__
            if kind is not hint and hint is not Any:
                # A value of exactly its declared builtin type (int, str...) fits as it is.
                self._convert(value, hint, f"argument {name!r}", name)
            if small and not _plainly_small(kind, value, name):
                small = False
        if small and len(encoded_args) + len(encoded_kwargs) <= _FEW_ARGUMENTS:
            return encoded_args, encoded_kwargs  # plainly under the bound: not encoded to weigh
        size = len(msgspec.json.encode((encoded_args, encoded_kwargs)))
        if size > MAX_ARGUMENT_BYTES:
            msg = (
                f"{self._name}: the arguments take {size:,} bytes as JSON, more than a message "
                f"carries ({MAX_ARGUMENT_BYTES:,}); put the data in a file inside an allowed "
                "root and pass its path (for bot runs: BotInput.from_file(path))"
            )
            raise PayloadError(msg)
        return encoded_args, encoded_kwargs

    def _named(
        self, args: tuple[Any, ...], kwargs: dict[str, Any], *, partial: bool
    ) -> Iterator[tuple[str, Any]]:
        """Each argument with its parameter's name (the call was bound already: it fits)."""
        names = self._positional_names if self._signature is not None else self._positional()
        if names is None:  # *args in the contract: let inspect place them
            bound = (
                self.signature.bind_partial(None, *args, **kwargs)
                if partial
                else self.signature.bind(*args, **kwargs)
            )
            if partial:
                bound.arguments.pop(next(iter(self.signature.parameters)), None)
            yield from bound.arguments.items()
            return
        yield from zip(names[1:] if partial else names, args, strict=False)
        yield from kwargs.items()

    def _positional(self) -> tuple[str, ...] | None:
        """The names of the parameters a positional argument can fill, in order (``None`` when
        the contract takes ``*args``); known once the signature is."""
        _ = self.signature
        return self._positional_names

    def _encode_all(self, values: tuple[Any, ...] | dict[str, Any]) -> Any:
        """``values`` (the positional tuple or the keyword dict) as JSON data, in one call;
        when that fails, value by value, to name the argument."""
        try:
            return msgspec.to_builtins(values)
        except (TypeError, msgspec.EncodeError):
            if isinstance(values, dict):
                for name, value in values.items():
                    self._encode(value, name)
            else:
                for index, value in enumerate(values):
                    self._encode(value, index)
            raise

    def _encode(self, value: Any, where: int | str) -> Any:
        try:
            return msgspec.to_builtins(value)
        except (TypeError, msgspec.EncodeError) as exc:
            name = where if isinstance(where, str) else self._positional_name(where)
            msg = (
                f"{self._name}: cannot send argument {name!r} ({type(value).__name__}) as JSON "
                f"({exc}); use a dataclass, a TypedDict, or plain data"
            )
            raise PayloadError(msg) from exc

    def _positional_name(self, index: int) -> str:
        names = list(self.signature.parameters)
        return names[index] if index < len(names) else f"#{index + 1}"

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


def _plainly_small(kind: type, value: Any, name: str) -> bool:
    """Whether an encoded argument and its name take a few kilobytes of JSON at most."""
    if len(name) > _SHORT_TEXT:
        return False
    if kind is str:
        return len(value) <= _SHORT_TEXT
    if kind is int:
        number: int = value
        return -_SHORT_INT < number < _SHORT_INT
    return kind in _SCALARS


_AT = re.compile(r" - at `\$(?P<path>[^`]*)`$")


def describe(exc: msgspec.ValidationError, root: str) -> str:
    """msgspec's message with its ``$`` path spelled from ``root`` (``params.depth``)."""
    text = str(exc)
    match = _AT.search(text)
    if match is None:
        return text
    return f"{text[: match.start()]} (at `{root}{match['path']}`)"
