"""Choose the transport from the settings: SMTP with a host, else the file outbox."""

from __future__ import annotations

from crawjud_tasks._settings import Settings
from crawjud_tasks.mail._outbox import OutboxTransport
from crawjud_tasks.mail._smtp import SmtpTransport
from crawjud_tasks.mail._transport import Transport

__all__ = ["transport_for"]


def transport_for(settings: Settings) -> Transport:
    """The SMTP transport when ``mail.host`` is set; else the outbox in ``mail.outbox_dir``
    (default ``<data_dir>/outbox``)."""
    if settings.mail.host:
        return SmtpTransport(settings.mail)
    folder = settings.mail.outbox_dir or settings.resolved_data_dir / "outbox"
    return OutboxTransport(folder)
