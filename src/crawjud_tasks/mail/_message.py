"""Build a checked MIME message from an :class:`EmailMessage` contract (stdlib ``email`` only).

Everything that reaches a header is checked first: addresses are parsed and validated (one
``@``, an ASCII domain, a dot-atom local part, an optional display name), and CR, LF, NUL and
the other line breaks are refused in every header value, so no header can be injected. An
attachment is read only from a regular file that resolves (symlinks followed) inside one of the
given roots, and only under the size cap. Anything odd raises :class:`InvalidEmailError`, which
names the field and the value, and nothing is built.
"""

from __future__ import annotations

import dataclasses
import email.policy
import email.utils
import hashlib
import mimetypes
import re
from collections.abc import Sequence
from datetime import datetime, timezone
from email.headerregistry import Address
from email.message import EmailMessage as MimeMessage
from pathlib import Path

from crawjud_tasks.errors import InvalidEmailError
from crawjud_tasks.mail.contracts import Attachment, EmailMessage

__all__ = [
    "DEFAULT_MAX_ATTACHMENT_BYTES",
    "DEFAULT_MAX_RECIPIENTS",
    "CheckedMessage",
    "build_message",
    "check_message",
    "deterministic_message_id",
    "envelope_recipients",
    "mime_message",
    "parse_address",
    "set_bodies",
]

#: The most recipients (to + cc + bcc) one message may have.
DEFAULT_MAX_RECIPIENTS = 50
#: The largest attachment, in bytes (10 MiB).
DEFAULT_MAX_ATTACHMENT_BYTES = 10 * 1024 * 1024

# CR, LF and NUL, plus every other character that str.splitlines() treats as a line break:
# none of them belongs in a header value.
_LINE_BREAKS = frozenset("\r\n\x00\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")
# RFC 5322 dot-atom (ASCII): no quoted local parts, no comments.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LOCAL_PART = re.compile(rf"{_ATEXT}(?:\.{_ATEXT})*")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DOMAIN = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
# ``addr``, ``Name <addr>`` or ``"Name, with comma" <addr>``.
_MAILBOX = re.compile(
    r'\s*(?:(?:"(?P<quoted>[^"\\]*)"|(?P<name>[^"<>@,;:\\]*?))\s*<(?P<angle>[^<>]*)>'
    r"|(?P<bare>[^<>\s]+))\s*"
)
_CONTENT_TYPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*")
_MESSAGE_ID = re.compile(r"<[^<>\s@]+@[^<>\s@]+>")


def _refuse(field: str, value: object, why: str) -> InvalidEmailError:
    return InvalidEmailError(f"{field} {value!r} {why}")


def _check_header_value(field: str, value: str) -> str:
    if any(char in _LINE_BREAKS for char in value):
        raise _refuse(field, value, "contains a line break or NUL, which no header may contain")
    return value


def parse_address(field: str, value: str) -> Address:
    """Parse and validate one mailbox (``ana@example.org`` or ``Ana <ana@example.org>``).

    Args:
        field: The field it came from (``to[0]``, ``sender``...), named in the error.
        value: The mailbox as given.

    Returns:
        The parsed address.

    Raises:
        InvalidEmailError: The value is not one plain mailbox with an ASCII domain.
    """
    _check_header_value(field, value)
    match = _MAILBOX.fullmatch(value)
    if match is None:
        raise _refuse(
            field, value, "is not one address (expected 'name@domain' or 'Name <name@domain>')"
        )
    addr = match["angle"] if match["angle"] is not None else match["bare"]
    name = (match["quoted"] if match["quoted"] is not None else match["name"] or "").strip()
    if addr.count("@") != 1:
        raise _refuse(field, value, "must contain exactly one '@'")
    local, domain = addr.split("@")
    if not _LOCAL_PART.fullmatch(local):
        raise _refuse(field, value, "has an invalid part before the '@'")
    if not _DOMAIN.fullmatch(domain) or len(domain) > 253:
        raise _refuse(field, value, "has an invalid domain (ASCII letters, digits, '-' and '.')")
    try:
        return Address(display_name=name, username=local, domain=domain)
    except ValueError as exc:  # the stdlib's own checks, as a second opinion
        raise _refuse(field, value, f"is not a valid address: {exc}") from exc


def _parse_list(field: str, values: Sequence[str]) -> list[Address]:
    return [parse_address(f"{field}[{index}]", value) for index, value in enumerate(values)]


def envelope_recipients(message: EmailMessage) -> list[str]:
    """The envelope recipients of ``message``: the addresses of to, cc and bcc, each once.

    Raises:
        InvalidEmailError: An address is invalid.
    """
    seen: set[str] = set()
    recipients: list[str] = []
    for field, values in (("to", message.to), ("cc", message.cc), ("bcc", message.bcc)):
        for address in _parse_list(field, values):
            if address.addr_spec.lower() not in seen:
                seen.add(address.addr_spec.lower())
                recipients.append(address.addr_spec)
    return recipients


def deterministic_message_id(namespace: str, key: str, sender_domain: str) -> str:
    """The Message-ID of a message with an idempotency key: the same key gives the same id.

    Args:
        namespace: The library's namespace, so two deployments never share ids.
        key: The message's idempotency key.
        sender_domain: The domain after the ``@`` (the sender's domain).

    Raises:
        InvalidEmailError: The domain is not a plain ASCII domain.
    """
    if not _DOMAIN.fullmatch(sender_domain):
        raise _refuse("sender domain", sender_domain, "is not a valid domain for a Message-ID")
    digest = hashlib.sha256(f"{namespace}\x00{key}".encode()).hexdigest()[:32]
    return f"<{digest}@{sender_domain}>"


def _read_attachment(
    index: int, attachment: Attachment, roots: Sequence[Path], max_bytes: int
) -> tuple[str, str, bytes]:
    field = f"attachments[{index}]"
    try:
        path = Path(attachment.path).resolve(strict=True)
    except (OSError, RuntimeError) as exc:  # missing, unreadable, or a symlink loop
        raise _refuse(f"{field}.path", attachment.path, f"cannot be opened: {exc}") from exc
    resolved_roots = [Path(root).resolve() for root in roots]
    if not any(path.is_relative_to(root) for root in resolved_roots):
        raise _refuse(f"{field}.path", attachment.path, "is outside the allowed attachment folders")
    if not path.is_file():
        raise _refuse(f"{field}.path", attachment.path, "is not a regular file")
    filename = attachment.filename if attachment.filename is not None else path.name
    _check_header_value(f"{field}.filename", filename)
    if not filename.strip():
        raise _refuse(f"{field}.filename", filename, "is empty")
    content_type = attachment.content_type
    if content_type is None:
        content_type = mimetypes.guess_type(filename)[0] or "application/octet-stream"
    _check_header_value(f"{field}.content_type", content_type)
    if not _CONTENT_TYPE.fullmatch(content_type):
        raise _refuse(f"{field}.content_type", content_type, "is not a 'type/subtype' MIME type")
    if content_type.split("/", 1)[0].lower() in {"multipart", "message"}:
        raise _refuse(f"{field}.content_type", content_type, "is a container type; attach a file")
    with path.open("rb") as file:
        data = file.read(max_bytes + 1)  # never read more than the cap, even if the file grows
    if len(data) > max_bytes:
        raise _refuse(f"{field}.path", attachment.path, f"is larger than {max_bytes} bytes")
    return filename, content_type, data


def _message_id(message: EmailMessage, given: str | None, domain: str) -> str:
    if given is None:
        if message.idempotency_key is not None:
            msg = (
                "the email has an idempotency_key but no message_id was given: pass "
                "message_id=deterministic_message_id(namespace, key, sender_domain)"
            )
            raise InvalidEmailError(msg)
        return email.utils.make_msgid(domain=domain)
    _check_header_value("message_id", given)
    if not _MESSAGE_ID.fullmatch(given):
        raise _refuse("message_id", given, "is not of the form '<id@domain>'")
    return given


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class CheckedMessage:
    """A message whose every header value, address and attachment passed the checks: what
    :func:`mime_message` and :class:`~crawjud_tasks.mail._wire.WireWriter` write out."""

    sender: Address
    to: list[Address]
    cc: list[Address]
    reply_to: list[Address]
    subject: str
    message_id: str
    text: str | None
    html: str | None
    #: ``(filename, content type, bytes)`` of each attachment, read once, under the cap.
    files: list[tuple[str, str, bytes]]


def check_message(
    message: EmailMessage,
    *,
    subject: str,
    html: str | None,
    text: str | None,
    sender: str | Address,
    attachment_roots: Sequence[Path],
    max_recipients: int = DEFAULT_MAX_RECIPIENTS,
    max_attachment_bytes: int = DEFAULT_MAX_ATTACHMENT_BYTES,
    message_id: str | None = None,
) -> CheckedMessage:
    """Check every header value, address and attachment of a message (arguments as
    :func:`build_message`; ``sender`` may be given already parsed).

    Raises:
        InvalidEmailError: An address, a header value, the bodies or an attachment is refused.
    """
    from_address = sender if isinstance(sender, Address) else parse_address("sender", sender)
    to = _parse_list("to", message.to)
    cc = _parse_list("cc", message.cc)
    bcc = _parse_list("bcc", message.bcc)
    reply_to = _parse_list("reply_to", message.reply_to)
    count = len(to) + len(cc) + len(bcc)
    if count == 0:
        msg = "the email has no recipient: give at least one address in to, cc or bcc"
        raise InvalidEmailError(msg)
    if count > max_recipients:
        msg = f"the email has {count} recipients (to + cc + bcc); the most is {max_recipients}"
        raise InvalidEmailError(msg)
    _check_header_value("subject", subject)
    if html is None and text is None:
        msg = "the email has no body: give html, text or both"
        raise InvalidEmailError(msg)
    checked_id = _message_id(message, message_id, from_address.domain)
    files = [
        _read_attachment(index, attachment, attachment_roots, max_attachment_bytes)
        for index, attachment in enumerate(message.attachments)
    ]
    return CheckedMessage(
        sender=from_address,
        to=to,
        cc=cc,
        reply_to=reply_to,
        subject=subject,
        message_id=checked_id,
        text=text,
        html=html,
        files=files,
    )


def build_message(
    message: EmailMessage,
    *,
    subject: str,
    html: str | None,
    text: str | None,
    sender: str,
    attachment_roots: Sequence[Path],
    max_recipients: int = DEFAULT_MAX_RECIPIENTS,
    max_attachment_bytes: int = DEFAULT_MAX_ATTACHMENT_BYTES,
    message_id: str | None = None,
) -> MimeMessage:
    """Build the MIME message to send, after checking every header value and attachment.

    The bodies become a ``multipart/alternative`` (text, then HTML) or a single part; with
    attachments, the whole is a ``multipart/mixed``. ``Bcc`` is never written into the headers:
    give :func:`envelope_recipients` to the transport.

    Args:
        message: The contract: recipients, reply-to, attachments and idempotency key.
        subject: The subject (rendered or literal).
        html: The HTML part, if any.
        text: The plain-text part, if any.
        sender: The ``From`` mailbox (``mail.sender``).
        attachment_roots: The folders attachments must resolve inside.
        max_recipients: The most recipients over to, cc and bcc.
        max_attachment_bytes: The largest size of each attachment.
        message_id: The Message-ID to use; required when the message has an idempotency key
            (compute it with :func:`deterministic_message_id`). Default: a fresh one.

    Returns:
        A stdlib ``email.message.EmailMessage`` with the SMTP policy (CRLF line ends).

    Raises:
        InvalidEmailError: An address, a header value, the bodies or an attachment is refused.
    """
    return mime_message(
        check_message(
            message,
            subject=subject,
            html=html,
            text=text,
            sender=sender,
            attachment_roots=attachment_roots,
            max_recipients=max_recipients,
            max_attachment_bytes=max_attachment_bytes,
            message_id=message_id,
        )
    )


def mime_message(checked: CheckedMessage, *, now: datetime | None = None) -> MimeMessage:
    """The stdlib MIME message of a checked message (the SMTP policy: CRLF line ends), dated
    ``now`` (default: the current time, in UTC)."""
    mime = MimeMessage(policy=email.policy.SMTP)
    mime["From"] = checked.sender
    if checked.to:
        mime["To"] = checked.to
    if checked.cc:
        mime["Cc"] = checked.cc
    if checked.reply_to:
        mime["Reply-To"] = checked.reply_to
    mime["Subject"] = checked.subject
    mime["Date"] = email.utils.format_datetime(now or datetime.now(timezone.utc))
    mime["Message-ID"] = checked.message_id
    set_bodies(mime, checked.text, checked.html)
    for filename, content_type, data in checked.files:
        maintype, subtype = content_type.split("/", 1)
        mime.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return mime


def set_bodies(mime: MimeMessage, text: str | None, html: str | None) -> None:
    """Give ``mime`` its bodies: text then HTML as ``multipart/alternative``, or the one given,
    each UTF-8 in quoted-printable."""
    if text is not None:
        mime.set_content(text, subtype="plain", cte="quoted-printable")
        if html is not None:
            mime.add_alternative(html, subtype="html", cte="quoted-printable")
    elif html is not None:
        mime.set_content(html, subtype="html", cte="quoted-printable")
