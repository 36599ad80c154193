"""``crawjud-tasks mail send-test ADDRESS``: one message through the configured transport."""

from __future__ import annotations

import click

from crawjud_tasks import Settings
from crawjud_tasks._cli._loader import fail
from crawjud_tasks.errors import CrawjudTasksError, MailTemporaryError

__all__ = ["send_test"]


@click.command("send-test")
@click.argument("address")
@click.option("--locale", type=click.Choice(["pt_BR", "en"]), default="pt_BR", show_default=True)
def send_test(address: str, locale: str) -> None:
    """Send one test message (the `alert` template) to ADDRESS, here and now, through the
    transport the settings select (SMTP, or the outbox when no mail host is set)."""
    from crawjud_tasks.mail import (  # noqa: PLC0415  (mail code loads on use)
        build_message,
        envelope_recipients,
        example_context,
        render,
        transport_for,
    )
    from crawjud_tasks.mail.contracts import EmailMessage, Locale  # noqa: PLC0415

    try:
        settings = Settings.from_env()
    except CrawjudTasksError as exc:
        raise fail(str(exc)) from exc
    try:
        chosen: Locale = "en" if locale == "en" else "pt_BR"
        message = EmailMessage(
            to=[address], template="alert", locale=chosen, context=example_context("alert") or {}
        )
        rendered = render(settings.mail, "alert", message.context, locale)
        mime = build_message(
            message,
            subject=rendered.subject,
            html=rendered.html,
            text=rendered.text,
            sender=settings.mail.sender,
            attachment_roots=(),
        )
        with transport_for(settings) as transport:
            result = transport.send(mime, envelope_recipients(message))
    except MailTemporaryError as exc:
        # The error's own text promises a retry, which a worker's task makes; here nothing does.
        what = "could not be reached" if exc.code == 0 else f"answered {exc.code}"
        msg = (
            f"not sent: the mail server {settings.mail.host}:{settings.mail.port} {what} "
            f"({exc.reply}); send-test does not retry: check mail.host, mail.port and that the "
            "server runs"
        )
        raise fail(msg) from exc
    except CrawjudTasksError as exc:
        raise fail(str(exc)) from exc
    where = result.path or f"{settings.mail.host}:{settings.mail.port}"
    click.echo(f"sent to {', '.join(result.accepted) or 'nobody'} through {where}")
    if result.refused:
        click.echo(f"refused: {result.refused}")
