"""Mail: Jinja2 templates and SMTP or outbox sending, as tasks.

Tasks here are named ``<namespace>.mail.*`` and routed to the ``<namespace>.mail`` queue; a host
service sends mail with :mod:`crawjud_tasks.mail.contracts`. This module offers the pieces that
run here and now, without a worker (``crawjud-tasks mail preview`` and ``mail send-test`` are
made of them): render a template, check an address, build the MIME message and send it through
the transport the settings select.

Example::

    from crawjud_tasks import Settings
    from crawjud_tasks.mail import build_message, envelope_recipients, render, transport_for
    from crawjud_tasks.mail.contracts import EmailMessage

    settings = Settings.from_env()
    message = EmailMessage(to=["ana@example.org"], template="alert", context={...})
    rendered = render(settings.mail, message.template, message.context, message.locale)
    mime = build_message(
        message, subject=rendered.subject, html=rendered.html, text=rendered.text,
        sender=settings.mail.sender, attachment_roots=(),
    )
    with transport_for(settings) as transport:
        transport.send(mime, envelope_recipients(message))

Importing this package stays cheap (the contracts module is imported by every host service):
Jinja2 and the transports load on first use of a name below.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from crawjud_tasks._lazy import lazy_names

if TYPE_CHECKING:
    from crawjud_tasks.mail._message import build_message, envelope_recipients, parse_address
    from crawjud_tasks.mail._templates import (
        RenderedEmail,
        check_template,
        example_context,
        render,
    )
    from crawjud_tasks.mail._transport import SendResult, Transport
    from crawjud_tasks.mail._transport_for import transport_for

__all__ = [
    "RenderedEmail",
    "SendResult",
    "Transport",
    "build_message",
    "check_template",
    "envelope_recipients",
    "example_context",
    "parse_address",
    "render",
    "transport_for",
]

#: Where each public name lives (loaded on first use).
_HOMES = {
    "RenderedEmail": "_templates",
    "SendResult": "_transport",
    "Transport": "_transport",
    "build_message": "_message",
    "check_template": "_templates",
    "envelope_recipients": "_message",
    "example_context": "_templates",
    "parse_address": "_message",
    "render": "_templates",
    "transport_for": "_transport_for",
}


__getattr__, __dir__ = lazy_names(__name__, _HOMES, globals())
