"""The implementations of the mail contracts: render, check, send once, record.

Each message gets a key: its ``idempotency_key``, or else the task's id and the message's index,
so that a redelivered or retried task never sends the same message twice. The key makes the
Message-ID (deterministic) and names the message's entry in the sent-ledger,
``<namespace>:mail:sent:<Message-ID>``, written as soon as the server (or the outbox) accepted the
message and kept for ``idempotency_ttl``: a message whose entry exists is not sent again, and its
receipt is returned with ``duplicate=True``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from crawjud_tasks._retry import RetryPolicy
from crawjud_tasks._state import app_state
from crawjud_tasks.errors import InvalidEmailError
from crawjud_tasks.mail._ledger import SentLedger
from crawjud_tasks.mail._message import (
    check_message,
    deterministic_message_id,
    envelope_recipients,
    parse_address,
)
from crawjud_tasks.mail._templates import render
from crawjud_tasks.mail._transport import Transport
from crawjud_tasks.mail._transport_for import transport_for
from crawjud_tasks.mail._wire import WireWriter
from crawjud_tasks.mail.contracts import EmailMessage, EmailReceipt

if TYPE_CHECKING:
    from celery import Celery

    from crawjud_tasks._settings import Settings

__all__ = ["attachment_roots", "send_messages", "smtp_policy"]


def smtp_policy(limit: float | None) -> RetryPolicy:
    """:meth:`RetryPolicy.smtp`, with its waits shortened to half the visibility timeout when
    they would reach it (a broker retry held back longer would be delivered twice)."""
    policy = RetryPolicy.smtp()
    if limit is None or policy.max_delay < limit:
        return policy
    jitter = min(policy.jitter, limit / 4)
    longest = limit / 2 - jitter
    return dataclasses.replace(
        policy, initial_wait=min(policy.initial_wait, longest), max_wait=longest, jitter=jitter
    )


def attachment_roots(settings: Settings) -> tuple[Path, ...]:
    """Where attachments may come from (``Settings.attachment_roots``)."""
    return settings.attachment_roots


def send_messages(app: Celery, messages: Sequence[EmailMessage], run_id: str) -> list[EmailReceipt]:
    """Render, check and send ``messages`` through one transport connection, each at most once.

    Every message is checked before the first is sent: a bad one fails the whole call with
    :class:`InvalidEmailError` and nothing is sent. A template with the same context and locale
    is rendered once, and the same bodies are written out once (:class:`WireWriter`).

    Raises:
        InvalidEmailError: a message is invalid (never retried).
        MailTemporaryError: a 4xx reply or a connection failure (retried by the policy).
        MailRejectedError: a 5xx reply (not retried).
    """
    settings = app_state(app).settings
    mail = settings.mail
    roots = attachment_roots(settings)
    sender = parse_address("sender", mail.sender)
    sender_domain = mail.sender.rpartition("@")[2].strip(" >") or "localhost"
    rendered: dict[tuple[str, str, bytes], tuple[str, str | None, str | None]] = {}
    writer = WireWriter()
    prepared: list[tuple[str, bytes, list[str]]] = []
    for index, message in enumerate(messages):
        subject, html, text = _content(settings, message, rendered)
        key = message.idempotency_key or f"task:{run_id}:{index}"
        message_id = deterministic_message_id(settings.namespace, key, sender_domain)
        checked = check_message(
            message,
            subject=subject,
            html=html,
            text=text,
            sender=sender,
            attachment_roots=roots,
            message_id=message_id,
        )
        prepared.append((message_id, writer.write(checked), envelope_recipients(message)))
    receipts: list[EmailReceipt] = []
    if not prepared:
        return receipts
    ledger = SentLedger(app)
    transport: Transport = transport_for(settings)
    kind = transport.kind
    entry = ledger.get(prepared[0][0])
    with transport:
        for index, (message_id, data, recipients) in enumerate(prepared):
            following = prepared[index + 1][0] if index + 1 < len(prepared) else None
            if entry is not None:
                receipts.append(dataclasses.replace(entry, duplicate=True))
                entry = ledger.get(following) if following is not None else None
                continue
            result = transport.send_bytes(
                data, sender=sender.addr_spec, message_id=message_id, recipients=recipients
            )
            receipt = EmailReceipt(
                message_id=message_id,
                accepted=list(result.accepted),
                refused=dict(result.refused),
                transport=kind,
                path=result.path,
            )
            # Recorded at once, before anything else; the next message's entry rides along.
            entry = ledger.put(message_id, receipt, then_get=following)
            receipts.append(receipt)
    return receipts


def _content(
    settings: Settings,
    message: EmailMessage,
    rendered: dict[tuple[str, str, bytes], tuple[str, str | None, str | None]],
) -> tuple[str, str | None, str | None]:
    if message.template is not None:
        if message.subject is not None or message.html is not None or message.text is not None:
            msg = "give either a template or a subject with bodies, not both"
            raise InvalidEmailError(msg)
        try:
            key = (message.template, message.locale, msgspec.json.encode(message.context))
        except (TypeError, msgspec.EncodeError):  # a context only a direct caller could give
            key = None
        if key is not None and key in rendered:
            return rendered[key]
        done = render(
            settings.mail,
            message.template,
            message.context,
            message.locale,
            timezone=settings.timezone,
        )
        content = (done.subject, done.html, done.text)
        if key is not None:
            rendered[key] = content
        return content
    if not message.subject:
        msg = "an email needs a template or a subject"
        raise InvalidEmailError(msg)
    if message.html is None and message.text is None:
        msg = "an email without a template needs an html or a text body"
        raise InvalidEmailError(msg)
    return message.subject, message.html, message.text
