"""The installed version of crawjud-tasks."""

from __future__ import annotations

import functools
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _distribution_version

__all__ = ["version"]


@functools.cache
def version() -> str:
    """The installed distribution's version (``0+unknown`` when run from a bare source tree)."""
    try:
        return _distribution_version("crawjud-tasks")
    except PackageNotFoundError:
        return "0+unknown"
