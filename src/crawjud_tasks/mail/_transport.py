"""What every mail transport offers: :class:`Transport` and the :class:`SendResult` of a send."""

from __future__ import annotations

import copy
import dataclasses
import email.message
import email.policy
from email.headerregistry import Address
from types import TracebackType
from typing import Literal, Protocol

from typing_extensions import Self

from crawjud_tasks.errors import InvalidEmailError

__all__ = ["ConnectionScope", "SendResult", "Transport", "envelope_sender", "wire_bytes"]


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

    def send_bytes(
        self, data: bytes, *, sender: str, message_id: str, recipients: list[str]
    ) -> SendResult:
        """Send a message already written out (CRLF line ends, no ``Bcc`` header) from the
        envelope ``sender`` to the envelope ``recipients``; ``message_id`` names it."""
        ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


def envelope_sender(msg: email.message.EmailMessage) -> str:
    """The address of the one ``From`` mailbox of ``msg`` (as :func:`build_message` sets it).

    Raises:
        InvalidEmailError: The message has no ``From`` address, or more than one.
    """
    addresses: tuple[Address, ...] = getattr(msg["From"], "addresses", ())
    if len(addresses) != 1:
        msg_ = "the message needs exactly one From address (build it with build_message)"
        raise InvalidEmailError(msg_)
    return addresses[0].addr_spec


def wire_bytes(msg: email.message.EmailMessage) -> bytes:
    """``msg`` as the transports send it: the SMTP policy (CRLF), without the ``Bcc`` and
    ``Resent-Bcc`` headers (as ``smtplib``'s ``send_message`` strips them)."""
    if "Bcc" in msg or "Resent-Bcc" in msg:
        msg = copy.copy(msg)
        del msg["Bcc"]
        del msg["Resent-Bcc"]
    return msg.as_bytes(policy=email.policy.SMTP)


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
