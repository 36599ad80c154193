"""What every mail transport offers: :class:`Transport` and the :class:`SendResult` of a send."""

from __future__ import annotations

import dataclasses
import email.message
from types import TracebackType
from typing import Literal, Protocol

from typing_extensions import Self

__all__ = ["ConnectionScope", "SendResult", "Transport"]


def _refusals() -> dict[str, str]:
    return {}


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class SendResult:
    """What a transport did with one message."""

    #: Recipients accepted (by the server, or all of them by the outbox).
    accepted: list[str]
    #: Recipients the server refused while accepting others, with its reply for each.
    refused: dict[str, str] = dataclasses.field(default_factory=_refusals)
    #: The ``.eml`` file the outbox wrote.
    path: str | None = None


class Transport(Protocol):
    """Sends MIME messages. As a context manager, one connection serves every :meth:`send`.

    Outside a ``with`` block (or :meth:`open`/:meth:`close`), each send opens and closes its own
    connection.
    """

    #: ``smtp`` or ``outbox``, as the receipts name it.
    @property
    def kind(self) -> Literal["smtp", "outbox"]: ...

    def open(self) -> None:
        """Open the connection that the following sends reuse."""

    def close(self) -> None:
        """Close the connection (never raises)."""

    def send(self, msg: email.message.EmailMessage, recipients: list[str]) -> SendResult:
        """Send ``msg`` to the envelope ``recipients`` (the headers are not read for them)."""
        ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


class ConnectionScope:
    """``with transport:`` opens the connection and closes it, for transports that define
    :meth:`open` and :meth:`close`."""

    def open(self) -> None:
        """Open the connection (nothing by default)."""

    def close(self) -> None:
        """Close the connection (nothing by default)."""

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
