"""The bytes a transport sends for a checked message, without redoing what a batch shares.

The standard library's ``email`` package costs about 4 ms a message (parsing each header value
into a tree and folding it back, then generating the body parts and their boundary). A bulk send
repeats the same bodies, subject and sender for every message, so :class:`WireWriter` has the
stdlib generate each distinct body (the ``multipart/alternative`` of text and HTML, or the one
part, with their ``MIME-Version``, ``Content-Type`` and ``Content-Transfer-Encoding``) once per
batch and writes only the headers per message. A header whose line is short, printable ASCII and
free of anything the stdlib would rewrite (``=?``, doubled or edge spaces, a display name with
specials) is written as ``Name: value`` (what the stdlib writes for it); any other is folded by
the stdlib, once per distinct value. Messages with attachments are generated whole by the stdlib.

The values were checked (:func:`~crawjud_tasks.mail._message.check_message`) before they get
here: no CR, LF or NUL reaches a header either way.
"""

from __future__ import annotations

import email.policy
import email.utils
import re
from datetime import datetime, timezone
from email.headerregistry import Address
from email.message import EmailMessage as MimeMessage

from crawjud_tasks.mail._message import CheckedMessage, mime_message, set_bodies

__all__ = ["WireWriter", "fold_header"]

_POLICY = email.policy.SMTP
_MAX_LINE = 78
#: A header value the stdlib writes back unchanged: printable ASCII, single inner spaces.
_PLAIN = re.compile(r"[!-~]+(?: [!-~]+)*")
#: A display name written bare by ``str(Address)`` and by the stdlib's folding: atext words.
_PLAIN_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?: [A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")


def fold_header(name: str, value: str | list[Address] | Address) -> bytes:
    """The header line(s) the stdlib's SMTP policy writes for ``name: value`` (CRLF ends)."""
    folded: str = _POLICY.header_factory(name, value).fold(policy=_POLICY)
    return folded.encode("ascii")


def _mailbox(address: Address) -> str | None:
    """``address`` as the stdlib writes it, when that is plain; else ``None``."""
    name = address.display_name
    if not name:
        return address.addr_spec
    if _PLAIN_NAME.fullmatch(name) and "=?" not in name:
        return f"{name} <{address.addr_spec}>"
    return None


class WireWriter:
    """Writes checked messages as the bytes to send (CRLF line ends), remembering the bodies and
    the folded headers it has written, for one batch (drop it afterwards)."""

    def __init__(self) -> None:
        self._bodies: dict[tuple[str | None, str | None], bytes] = {}
        self._folded: dict[tuple[str, str], bytes] = {}

    def write(self, checked: CheckedMessage, *, now: datetime | None = None) -> bytes:
        """The message's bytes: headers, then the bodies (or the stdlib's whole message when it
        has attachments). ``now`` is the ``Date`` (default: the current time, in UTC)."""
        now = now or datetime.now(timezone.utc)
        if checked.files:
            return mime_message(checked, now=now).as_bytes(policy=_POLICY)
        date = email.utils.format_datetime(now)
        lines = [self._addresses("From", [checked.sender])]
        if checked.to:
            lines.append(self._addresses("To", checked.to))
        if checked.cc:
            lines.append(self._addresses("Cc", checked.cc))
        if checked.reply_to:
            lines.append(self._addresses("Reply-To", checked.reply_to))
        lines.append(self._header("Subject", checked.subject))
        lines.append(self._header("Date", date))
        lines.append(self._header("Message-ID", checked.message_id))
        lines.append(self._body(checked.text, checked.html))
        return b"".join(lines)

    def _addresses(self, name: str, addresses: list[Address]) -> bytes:
        plain = [_mailbox(address) for address in addresses]
        value = ", ".join(str(address) for address in addresses)
        if all(mailbox is not None for mailbox in plain):
            line = f"{name}: {', '.join(mailbox for mailbox in plain if mailbox is not None)}"
            if len(line) <= _MAX_LINE and line.isascii():
                return f"{line}\r\n".encode("ascii")
        return self._fold(name, value)

    def _header(self, name: str, value: str) -> bytes:
        line = f"{name}: {value}"
        if len(line) <= _MAX_LINE and "=?" not in value and _PLAIN.fullmatch(value):
            return f"{line}\r\n".encode("ascii")
        return self._fold(name, value)

    def _fold(self, name: str, value: str) -> bytes:
        key = (name, value)
        folded = self._folded.get(key)
        if folded is None:
            folded = self._folded[key] = fold_header(name, value)
        return folded

    def _body(self, text: str | None, html: str | None) -> bytes:
        key = (text, html)
        body = self._bodies.get(key)
        if body is None:
            part = MimeMessage(policy=_POLICY)
            set_bodies(part, text, html)
            body = self._bodies[key] = part.as_bytes(policy=_POLICY)
        return body
