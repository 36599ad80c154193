"""``isinstance`` checks that say what the narrowed value holds: anything (``Any``).

A bare ``isinstance(value, dict)`` on an untyped value narrows it to ``dict[Unknown, Unknown]``
for pyright, and strict mode then flags every place the value flows to. These guards run the same
check and narrow to the ``Any``-parameterised type, which is what the callers assume: the
contents are untyped data (user settings, decoded JSON, Celery configuration).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, TypeGuard

__all__ = [
    "is_dict",
    "is_instance",
    "is_list",
    "is_list_or_tuple",
    "is_mapping",
    "is_mapping_proxy",
]


def is_mapping(value: object) -> TypeGuard[Mapping[Any, Any]]:
    """``isinstance(value, Mapping)``."""
    return isinstance(value, Mapping)


def is_mapping_proxy(value: object) -> TypeGuard[MappingProxyType[Any, Any]]:
    """``isinstance(value, MappingProxyType)``."""
    return isinstance(value, MappingProxyType)


def is_dict(value: object) -> TypeGuard[dict[Any, Any]]:
    """``isinstance(value, dict)``."""
    return isinstance(value, dict)


def is_list(value: object) -> TypeGuard[list[Any]]:
    """``isinstance(value, list)``."""
    return isinstance(value, list)


def is_list_or_tuple(value: object) -> TypeGuard[list[Any] | tuple[Any, ...]]:
    """``isinstance(value, list | tuple)``."""
    return isinstance(value, list | tuple)


def is_instance(value: object, kind: type[Any] | tuple[type[Any], ...]) -> bool:
    """``isinstance(value, kind)`` for values the types already promise but an untyped caller
    may still get wrong: the type checkers take the check as it is, without narrowing."""
    return isinstance(value, kind)
