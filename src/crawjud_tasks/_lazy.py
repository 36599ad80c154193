"""Public names loaded on first use (PEP 562), for the packages whose names are heavy to import.

``import crawjud_tasks`` must stay cheap (a container probe runs every few seconds, and a host
that imports a contract must not load Celery's worker, Jinja2 or smtplib): a package lists where
each public name lives, and :func:`lazy_names` gives it the module ``__getattr__`` and
``__dir__`` that import the home module when the name is first read and keep the value.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_names"]


def lazy_names(
    package: str, homes: Mapping[str, str], namespace: dict[str, Any]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of ``package``.

    Args:
        package: The package's ``__name__``.
        homes: Each lazy name and the module it lives in, relative to ``package`` (``_app``).
        namespace: The package's ``globals()``: a loaded value is kept there, so the next read
            costs nothing.
    """

    def __getattr__(name: str) -> Any:
        home = homes.get(name)
        if home is None:
            msg = f"module {package!r} has no attribute {name!r}"
            raise AttributeError(msg)
        value = getattr(importlib.import_module(f"{package}.{home}"), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace, *namespace.get("__all__", ()), *homes})

    return __getattr__, __dir__
