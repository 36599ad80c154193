"""A string that never shows itself: passwords in settings."""

from __future__ import annotations

import hmac
from typing import final

from crawjud_tasks._redact import REDACTED

__all__ = ["Secret"]


@final
class Secret:
    """A secret string: redacted in ``repr``, ``str`` and formatting; read it with :meth:`reveal`.

    Args:
        value: The secret itself.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """Return the secret value. Never log or print what this returns."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret({REDACTED!r})"

    __str__ = __repr__

    def __format__(self, format_spec: str) -> str:
        return repr(self)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash((Secret, self._value))

    def __reduce__(self) -> str:
        msg = "a Secret cannot be pickled; pass a secret reference instead"
        raise TypeError(msg)
