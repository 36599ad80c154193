"""The SMTP transport: verified TLS, one connection per ``with`` block, replies classified.

Errors, all raised ``from`` the smtplib or socket error::

    MailTemporaryError(code, reply)   4xx replies, every recipient refused with a 4xx among
                                      them, a dropped connection, a time-out, a refused
                                      connection or a failed TLS handshake (code 0): retried
    MailRejectedError(code, reply)    5xx replies (and every recipient refused with 5xx): final
    SettingsError                     ``starttls`` is configured but the server does not offer
                                      STARTTLS, or a username is set but the server offers no
                                      AUTH: fix the settings (or the server); never retried

The password is read from its :class:`~crawjud_tasks.Secret` only to log in, and appears in no
log or error.
"""

from __future__ import annotations

import email.message
import smtplib
import ssl
from typing import Literal

from crawjud_tasks._settings import MailSettings
from crawjud_tasks.errors import (
    InvalidEmailError,
    MailRejectedError,
    MailTemporaryError,
    SettingsError,
)
from crawjud_tasks.mail._transport import (
    ConnectionScope,
    SendResult,
    envelope_sender,
    wire_bytes,
)

__all__ = ["SmtpTransport"]


def _text(reply: bytes | str) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply


def _check_recipients(recipients: list[str]) -> None:
    if not recipients:
        msg = "the email has no envelope recipients"
        raise InvalidEmailError(msg)


def _classify(code: int, reply: str) -> MailTemporaryError | MailRejectedError:
    if 500 <= code <= 599:
        return MailRejectedError(code, reply)
    return MailTemporaryError(code, reply)


class SmtpTransport(ConnectionScope):
    """Sends through the SMTP server of ``settings`` (``mail.host``, ``port``, ``security``...).

    ``security="tls"`` connects with implicit TLS (``SMTP_SSL``); ``"starttls"`` upgrades with
    STARTTLS before anything else (and refuses a server that does not offer it); ``"none"``
    sends in clear. Certificates are verified (CA and host name) with
    ``ssl.create_default_context()`` unless ``ssl_context`` is given.

    Args:
        settings: The mail settings.
        ssl_context: The TLS context (for a private CA); default: the system's, verified.
    """

    def __init__(
        self, settings: MailSettings, *, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        if not settings.host:
            msg = "mail.host is not set: the SMTP transport needs a server (or use the outbox)"
            raise SettingsError(msg)
        self.settings = settings
        self._host: str = settings.host
        self._context = ssl_context if ssl_context is not None else ssl.create_default_context()
        self._connection: smtplib.SMTP | None = None

    @property
    def kind(self) -> Literal["smtp"]:
        """Always ``smtp``."""
        return "smtp"

    @property
    def _where(self) -> str:
        return f"{self._host}:{self.settings.port}"

    def open(self) -> None:
        """Connect, secure the connection and log in; the following sends reuse it.

        Raises:
            MailTemporaryError: The server could not be reached, or answered 4xx.
            MailRejectedError: The server answered 5xx (for example, a refused login).
            SettingsError: The server does not offer STARTTLS or AUTH when the settings need it.
        """
        if self._connection is not None:
            return
        settings = self.settings
        connection: smtplib.SMTP | None = None
        try:
            if settings.security == "tls":
                connection = smtplib.SMTP_SSL(
                    self._host, settings.port, timeout=settings.timeout, context=self._context
                )
            else:
                connection = smtplib.SMTP(self._host, settings.port, timeout=settings.timeout)
            connection.ehlo()
            if settings.security == "starttls":
                if not connection.has_extn("starttls"):
                    msg = (
                        f"mail.security is 'starttls' but the server at {self._where} does not "
                        "offer STARTTLS (nothing was sent, no credentials either): use "
                        "security='tls' for a server with implicit TLS, or check the server; "
                        "a network attacker can also strip STARTTLS"
                    )
                    raise SettingsError(msg)
                connection.starttls(context=self._context)
                connection.ehlo()
            if settings.username:
                if not connection.has_extn("auth"):
                    msg = (
                        f"mail.username is set but the server at {self._where} offers no AUTH "
                        "(on this connection): unset it or use TLS"
                    )
                    raise SettingsError(msg)
                password = settings.password.reveal() if settings.password is not None else ""
                connection.login(settings.username, password)
        except BaseException as exc:
            if connection is not None:
                connection.close()
            raise self._translate(exc) from exc
        self._connection = connection

    def close(self) -> None:
        """Say QUIT and close the connection; never raises."""
        connection, self._connection = self._connection, None
        if connection is None:
            return
        try:
            connection.quit()
        except (smtplib.SMTPException, OSError):
            pass
        finally:
            connection.close()

    def send(self, msg: email.message.EmailMessage, recipients: list[str]) -> SendResult:
        """Send ``msg`` to ``recipients`` over the open connection (or a connection of its own).

        Returns:
            The accepted recipients, and those refused while others were accepted.

        Raises:
            InvalidEmailError: No recipients, or the message has no ``From`` address.
            MailTemporaryError: A 4xx reply or a connection failure; the connection is dropped
                when it failed, and the next send reconnects.
            MailRejectedError: A 5xx reply, or every recipient refused with 5xx.
        """
        _check_recipients(recipients)
        sender = envelope_sender(msg)
        message_id = str(msg.get("Message-ID", ""))
        return self.send_bytes(
            wire_bytes(msg), sender=sender, message_id=message_id, recipients=recipients
        )

    def send_bytes(
        self, data: bytes, *, sender: str, message_id: str, recipients: list[str]
    ) -> SendResult:
        """Send ``data`` (a whole message, CRLF line ends) from ``sender`` to ``recipients``:
        MAIL, one RCPT each, DATA. Errors as :meth:`send`."""
        _check_recipients(recipients)
        own = self._connection is None
        self.open()
        connection = self._connection
        assert connection is not None  # open() set it or raised
        try:
            refused_replies = connection.sendmail(sender, recipients, data)
        except smtplib.SMTPRecipientsRefused as exc:
            raise self._all_refused(exc) from exc
        except (smtplib.SMTPException, OSError) as exc:
            if not isinstance(exc, smtplib.SMTPResponseException):
                self._drop()
            raise self._translate(exc) from exc
        finally:
            if own:
                self.close()
        refused = {
            address: f"{code} {_text(reply)}" for address, (code, reply) in refused_replies.items()
        }
        accepted = [address for address in recipients if address not in refused]
        return SendResult(accepted=accepted, refused=refused)

    def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()

    def _all_refused(
        self, exc: smtplib.SMTPRecipientsRefused
    ) -> MailTemporaryError | MailRejectedError:
        replies = {
            address: (code, _text(reply)) for address, (code, reply) in exc.recipients.items()
        }
        reply = "; ".join(f"{address}: {code} {text}" for address, (code, text) in replies.items())
        temporary = [code for code, _ in replies.values() if 400 <= code <= 499]
        if temporary:
            return MailTemporaryError(temporary[0], f"every recipient was refused: {reply}")
        code = next(iter(replies.values()))[0] if replies else 550
        return MailRejectedError(code, f"every recipient was refused: {reply}")

    def _translate(self, exc: BaseException) -> BaseException:
        if isinstance(exc, (SettingsError, MailTemporaryError, MailRejectedError)):
            return exc
        if isinstance(exc, smtplib.SMTPResponseException):
            return _classify(exc.smtp_code, _text(exc.smtp_error))
        if isinstance(exc, smtplib.SMTPNotSupportedError):
            msg = f"the server at {self._where} does not support a needed command: {exc}"
            return SettingsError(msg)
        if isinstance(exc, ssl.SSLCertVerificationError):
            reply = (
                f"the TLS certificate of {self._where} could not be verified "
                f"({exc.verify_message}); nothing was sent"
            )
            return MailTemporaryError(0, reply)
        if isinstance(exc, (smtplib.SMTPException, OSError)):
            reply = f"connection to {self._where} failed: {type(exc).__name__}: {exc}"
            return MailTemporaryError(0, reply)
        return exc
