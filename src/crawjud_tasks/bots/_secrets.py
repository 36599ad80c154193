"""Secrets of a run: providers that resolve a :class:`SecretRef` on the worker, and the scrubber
that masks the resolved values in everything a run writes.

A message carries only a secret's name; the worker asks its providers in order and takes the
first value found. Two providers ship here:

- :class:`EnvSecretProvider`: ``SecretRef("projudi-ana")`` is the environment variable
  ``CRAWJUD_SECRET_PROJUDI_ANA``.
- :class:`FileSecretProvider`: the same reference is the file ``projudi-ana`` in a folder, the
  way Docker and Kubernetes mount secrets.

A host adds its own (a vault, a database) by writing a class with
``get(name) -> str | None``. A provider's ``repr`` must never show a value: it appears in error
messages.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Protocol, final, runtime_checkable

from crawjud_tasks._redact import REDACTED
from crawjud_tasks._secret import Secret
from crawjud_tasks.bots.contracts import Cell, SecretRef
from crawjud_tasks.errors import BotParameterError, SecretNotFoundError

__all__ = [
    "DEFAULT_SECRET_ENV_PREFIX",
    "MIN_SCRUB_LENGTH",
    "EnvSecretProvider",
    "FileSecretProvider",
    "Scrubber",
    "SecretProvider",
    "resolve_secret",
]

#: The prefix of the environment variables :class:`EnvSecretProvider` reads by default.
DEFAULT_SECRET_ENV_PREFIX = "CRAWJUD_SECRET_"  # noqa: S105  (a variable-name prefix, not a secret)
#: Secret values shorter than this are not masked by :class:`Scrubber`: masking every ``"ab1"``
#: in a run's logs and reports would mangle them while protecting a secret too weak to matter.
MIN_SCRUB_LENGTH = 4

_LOG = logging.getLogger("crawjud_tasks.bots.secrets")
#: A secret name as an environment variable's tail: upper case, ``-`` and ``.`` become ``_``.
_ENV_NAME = str.maketrans("-.abcdefghijklmnopqrstuvwxyz", "__ABCDEFGHIJKLMNOPQRSTUVWXYZ")


class SecretProvider(Protocol):
    """Where the worker looks a secret up by name."""

    def get(self, name: str) -> str | None:
        """The secret's value, or ``None`` if this provider does not know ``name``."""
        ...


@runtime_checkable
class _Hinting(Protocol):
    """A provider that can say how to give it a secret (for the not-found message)."""

    def hint(self, name: str) -> str: ...


@final
class EnvSecretProvider:
    """Secrets from environment variables: ``prefix`` + the name, upper case, with ``-`` and
    ``.`` as ``_`` (``"projudi-ana"`` is ``CRAWJUD_SECRET_PROJUDI_ANA``).

    An empty variable counts as unset, so that it never hides the secret from a later provider.

    Args:
        prefix: The variables' prefix.
        environ: The variables to read (default: the process environment, read at each lookup).
    """

    __slots__ = ("_environ", "prefix")

    def __init__(
        self, prefix: str = DEFAULT_SECRET_ENV_PREFIX, environ: Mapping[str, str] | None = None
    ) -> None:
        self.prefix = prefix
        self._environ = environ

    def variable(self, name: str) -> str:
        """The environment variable that holds the secret ``name``."""
        return self.prefix + name.translate(_ENV_NAME)

    def get(self, name: str) -> str | None:
        """The variable's value, or ``None`` if it is unset or empty."""
        environ = os.environ if self._environ is None else self._environ
        return environ.get(self.variable(name)) or None

    def hint(self, name: str) -> str:
        """How to give this provider the secret ``name``."""
        return f"set {self.variable(name)} in the worker's environment"

    def __repr__(self) -> str:
        return f"EnvSecretProvider(prefix={self.prefix!r})"


@final
class FileSecretProvider:
    """Secrets from files: the secret ``name`` is the file ``<folder>/<name>``, its content
    without one trailing newline (how Docker and Kubernetes mount secrets).

    A missing or empty file counts as unknown. The name must be a plain file name: no path
    separator, no NUL, not starting with ``.`` (which also keeps ``..`` and Kubernetes'
    ``..data`` out of reach).

    Args:
        folder: The folder of secret files (e.g. ``/run/secrets``).
    """

    __slots__ = ("folder",)

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    def get(self, name: str) -> str | None:
        """The file's text (UTF-8, one trailing newline stripped), or ``None`` if it is absent.

        Raises:
            BotParameterError: ``name`` is not a plain file name.
            SecretNotFoundError: the file exists but cannot be read as UTF-8 text.
        """
        path = self._path(name)
        try:
            value = path.read_bytes().decode()
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            msg = (
                f"the secret file {path} cannot be read ({type(exc).__name__}: {exc.strerror}); "
                "give the worker's user read access to it"
            )
            raise SecretNotFoundError(msg) from exc
        except UnicodeDecodeError:
            msg = f"the secret file {path} is not UTF-8 text; write the secret as UTF-8"
            raise SecretNotFoundError(msg) from None
        if value.endswith("\n"):
            value = value[:-2] if value.endswith("\r\n") else value[:-1]
        return value or None

    def hint(self, name: str) -> str:
        """How to give this provider the secret ``name``."""
        return f"put a file {name} in {self.folder}"

    def _path(self, name: str) -> Path:
        separators = {"/", "\\", "\0", os.sep, os.altsep or "/"}
        if not name or name.startswith(".") or any(s in name for s in separators):
            msg = (
                f"a secret name is a plain file name (no path separator, not starting with "
                f"'.'), got {name!r}"
            )
            raise BotParameterError(msg)
        return self.folder / name

    def __repr__(self) -> str:
        return f"FileSecretProvider({str(self.folder)!r})"


def resolve_secret(ref: SecretRef, providers: Sequence[SecretProvider]) -> Secret:
    """The value of ``ref`` from the first provider that knows its name.

    Raises:
        SecretNotFoundError: no provider knows the name; the message names the reference, the
            providers tried and how to give it to them (never a value).
        BotParameterError: a provider refused the name (see :class:`FileSecretProvider`).
    """
    for provider in providers:
        value = provider.get(ref.name)
        if value is not None:
            return Secret(value)
    if not providers:
        msg = f"no secret provider to resolve {ref!r}: the worker has none configured"
        raise SecretNotFoundError(msg)
    tried = ", ".join(repr(provider) for provider in providers)
    hints = [provider.hint(ref.name) for provider in providers if isinstance(provider, _Hinting)]
    fix = " or ".join(hints) if hints else "make one of these providers know the name"
    msg = f"no secret provider knows {ref!r} (tried {tried}); {fix}"
    raise SecretNotFoundError(msg)


@final
class Scrubber:
    """Masks secret values (with ``***``) in text: a run's log lines, events, reasons, cells.

    Every occurrence of every value is masked, overlapping ones too: the spans they cover are
    merged, so no fragment of a secret is left beside a mask. Matching is exact (case-sensitive).
    Values shorter than :data:`MIN_SCRUB_LENGTH` are not masked (a warning is logged once, when
    the scrubber is built). With no secrets, :meth:`scrub` returns the text as it is.

    Args:
        secrets: The run's resolved secrets.
    """

    __slots__ = ("_values",)

    def __init__(self, secrets: Iterable[Secret]) -> None:
        values: set[str] = set()
        short = False
        for secret in secrets:
            value = secret.reveal()
            if len(value) >= MIN_SCRUB_LENGTH:
                values.add(value)
            elif value:
                short = True
        if short:
            _LOG.warning(
                "a secret shorter than %d characters is not masked in run logs and reports; "
                "use a longer one",
                MIN_SCRUB_LENGTH,
            )
        # Longest first, for a stable order; the result does not depend on it (spans merge).
        self._values = tuple(sorted(values, key=lambda v: (-len(v), v)))

    def scrub(self, text: str) -> str:
        """``text`` with every secret value in it replaced by ``***``."""
        if not self._values:
            return text
        spans: list[tuple[int, int]] = []
        for value in self._values:
            start = text.find(value)
            while start != -1:
                spans.append((start, start + len(value)))
                start = text.find(value, start + 1)
        if not spans:
            return text
        spans.sort()
        parts: list[str] = []
        copied = 0  # text[:copied] is in parts already
        masked = -1  # where the current run of masked spans ends
        for start, end in spans:
            if start > masked:  # apart from the previous spans: text, then a new mask
                parts.append(text[copied:start])
                parts.append(REDACTED)
            masked = max(masked, end)
            copied = masked
        parts.append(text[copied:])
        return "".join(parts)

    def scrub_cells(self, cells: Mapping[str, Cell]) -> dict[str, Cell]:
        """A copy of ``cells`` with secret values masked in text cells.

        A number cell whose digits contain a secret becomes the masked text.
        """
        if not self._values:
            return dict(cells)
        scrubbed: dict[str, Cell] = {}
        for column, cell in cells.items():
            if isinstance(cell, str):
                scrubbed[column] = self.scrub(cell)
            elif isinstance(cell, int | float) and not isinstance(cell, bool):
                shown = str(cell)
                masked = self.scrub(shown)
                scrubbed[column] = cell if masked == shown else masked
            else:
                scrubbed[column] = cell
        return scrubbed

    def __bool__(self) -> bool:
        return bool(self._values)

    def __repr__(self) -> str:
        return f"Scrubber({len(self._values)} secrets)"
