"""The mail contracts and their payload types: what a host imports to send mail.

Cheap to import (no Jinja2, no SMTP): a host service dispatches with these, and the worker
implements them.

Example::

    from crawjud_tasks.mail.contracts import EmailMessage, send_email

    receipt = send_email.s(
        EmailMessage(to=["ana@example.org"], template="bot_finished", context={...})
    ).apply_async(idempotency_key="run-42-finished")
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from crawjud_tasks._contracts import task_contract

__all__ = [
    "Attachment",
    "EmailMessage",
    "EmailReceipt",
    "send_bulk",
    "send_email",
]

#: The locales the shipped templates are written in.
Locale = Literal["pt_BR", "en"]


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Attachment:
    """A file to attach, by path (inside ``mail.attachment_roots``: by default
    ``bots.allowed_roots`` and the reports folder), never by content in the message."""

    #: The file's path on the worker's machine (or a shared store).
    path: str
    #: The file name the recipient sees (default: the path's name).
    filename: str | None = None
    #: The MIME type (default: guessed from the name).
    content_type: str | None = None


def _strings() -> list[str]:
    return []


def _context() -> dict[str, Any]:
    return {}


def _attachments() -> list[Attachment]:
    return []


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class EmailMessage:
    """One email: recipients, then a template with its context or a literal subject and bodies.

    Give either ``template`` (with ``context`` and ``locale``; the template gives the subject,
    the HTML part and the text part) or ``subject`` with ``html`` and/or ``text``.
    """

    to: list[str]
    cc: list[str] = dataclasses.field(default_factory=_strings)
    bcc: list[str] = dataclasses.field(default_factory=_strings)
    reply_to: list[str] = dataclasses.field(default_factory=_strings)
    #: A template name (``bot_finished``), rendered with ``context`` in ``locale``.
    template: str | None = None
    context: dict[str, Any] = dataclasses.field(default_factory=_context)
    locale: Locale = "pt_BR"
    #: A literal subject and bodies, when no template is given.
    subject: str | None = None
    html: str | None = None
    text: str | None = None
    attachments: list[Attachment] = dataclasses.field(default_factory=_attachments)
    #: Sends at most once per key: it makes the Message-ID, and the sent-ledger remembers it.
    idempotency_key: str | None = None


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class EmailReceipt:
    """What happened to one email."""

    #: The Message-ID header (deterministic when the message has an idempotency key).
    message_id: str
    #: Recipients the server (or the outbox) accepted.
    accepted: list[str]
    #: Recipients the server refused, with its reply for each.
    refused: dict[str, str]
    #: ``smtp`` or ``outbox``.
    transport: Literal["smtp", "outbox"]
    #: The ``.eml`` file written by the outbox transport.
    path: str | None = None
    #: True when the sent-ledger showed it was sent already, so nothing was sent this time.
    duplicate: bool = False


@task_contract("mail.send_email", delivery="at_least_once")
def send_email(message: EmailMessage) -> EmailReceipt:
    """Render (if templated), check and send one email; at most once per idempotency key."""
    raise NotImplementedError


@task_contract("mail.send_bulk", delivery="at_least_once")
def send_bulk(messages: list[EmailMessage]) -> list[EmailReceipt]:
    """Send many emails over one SMTP connection; one receipt per message, in order."""
    raise NotImplementedError
