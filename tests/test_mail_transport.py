"""Mail transports against a real SMTP server (aiosmtpd on 127.0.0.1) and a real outbox folder.

No mock of smtplib: the server below stores what it receives, counts connections, records the
commands that matter (STARTTLS, AUTH, MAIL) and can be told to refuse recipients or answer DATA
with a 4xx or 5xx reply.
"""

from __future__ import annotations

import dataclasses
import email
import email.policy
import os
import re
import socket
import ssl
import stat
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from email.message import EmailMessage as MimeMessage
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from crawjud_tasks._secret import Secret
from crawjud_tasks._settings import MailSettings, Settings
from crawjud_tasks.errors import (
    InvalidEmailError,
    MailRejectedError,
    MailTemporaryError,
    SettingsError,
)
from crawjud_tasks.mail._message import (
    build_message,
    check_message,
    deterministic_message_id,
    envelope_recipients,
    mime_message,
)
from crawjud_tasks.mail._outbox import OutboxTransport
from crawjud_tasks.mail._smtp import SmtpTransport
from crawjud_tasks.mail._transport_for import transport_for
from crawjud_tasks.mail._wire import WireWriter
from crawjud_tasks.mail.contracts import Attachment, EmailMessage

SENDER = "CrawJUD <noreply@crawjud.test>"
PASSWORD = "hunter2-do-not-leak"


@dataclasses.dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    peer: Any

    def parsed(self) -> MimeMessage:
        msg = email.message_from_bytes(self.data, policy=email.policy.default)
        assert isinstance(msg, MimeMessage)
        return msg


class Handler:
    """Stores envelopes; refuses listed recipients; answers the next DATA with queued replies."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.refuse: dict[str, str] = {}
        self.data_replies: list[str] = []
        self.commands: list[str] = []
        self.peers: set[Any] = set()

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.peers.add(session.peer)
        if self.data_replies:
            return self.data_replies.pop(0)
        content = envelope.original_content or b""
        self.received.append(
            Received(str(envelope.mail_from), list(envelope.rcpt_tos), content, session.peer)
        )
        return "250 2.0.0 accepted"


class RecordingSMTP(SMTP):
    """Records the commands that must not come too early (credentials, mail)."""

    async def smtp_STARTTLS(self, arg: str) -> None:
        self.event_handler.commands.append("STARTTLS")
        await super().smtp_STARTTLS(arg)

    async def smtp_AUTH(self, arg: str) -> None:
        self.event_handler.commands.append("AUTH")
        await super().smtp_AUTH(arg)

    async def smtp_MAIL(self, arg: str | None) -> None:
        self.event_handler.commands.append("MAIL")
        await super().smtp_MAIL(arg)


class RecordingController(Controller):
    def factory(self) -> SMTP:
        return RecordingSMTP(self.handler, **self.SMTP_kwargs)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def check_password(
    server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and auth_data.password == PASSWORD.encode()
    return AuthResult(success=ok, handled=False)


Server = Callable[..., tuple[Handler, int]]


@pytest.fixture
def smtp_server() -> Iterator[Server]:
    """Start a real aiosmtpd server on 127.0.0.1 (keyword arguments go to the Controller)."""
    controllers: list[Controller] = []

    def start(**kwargs: Any) -> tuple[Handler, int]:
        handler = Handler()
        port = free_port()
        controller = RecordingController(handler, hostname="127.0.0.1", port=port, **kwargs)
        controller.start()
        controllers.append(controller)
        handler.commands.clear()  # the controller's own readiness probe
        return handler, port

    yield start
    for controller in controllers:
        controller.stop()


@pytest.fixture
def server(smtp_server: Server) -> tuple[Handler, int]:
    return smtp_server()


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 from a throwaway CA (trustme): the server's key and chain,
    and the CA that a client must trust to verify it."""
    folder = tmp_path_factory.mktemp("tls")
    authority = trustme.CA()
    chain, ca = folder / "server.pem", folder / "ca.pem"
    authority.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(chain))
    authority.cert_pem.write_to_path(str(ca))
    return chain, ca


def server_tls(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certificate[0])
    return context


def client_tls(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(certificate[1]))


def mail_settings(port: int, **changes: Any) -> MailSettings:
    values: dict[str, Any] = {"security": "none", "sender": SENDER, "timeout": 5.0}
    return MailSettings(host="127.0.0.1", port=port, **(values | changes))


def build(message: EmailMessage, roots: list[Path] | None = None, **kwargs: Any) -> MimeMessage:
    defaults: dict[str, Any] = {
        "subject": "Execução concluída",
        "html": "<p>Olá <b>Ana</b></p>",
        "text": "Olá Ana",
        "sender": SENDER,
        "attachment_roots": roots or [],
    }
    defaults.update(kwargs)
    return build_message(message, **defaults)


def send(port: int, message: EmailMessage, roots: list[Path] | None = None) -> Any:
    mime = build(message, roots)
    return SmtpTransport(mail_settings(port)).send(mime, envelope_recipients(message))


# -- what arrives ----------------------------------------------------------------------------


def test_headers_both_parts_and_an_attachment_arrive(
    server: tuple[Handler, int], tmp_path: Path
) -> None:
    handler, port = server
    report = tmp_path / "relatório.csv"
    report.write_text("processo;status\n1;ok\n", encoding="utf-8")
    message = EmailMessage(
        to=["João Silva <joao@example.org>"],
        cc=['"Silva, Ana" <ana@example.org>'],
        reply_to=["suporte@example.org"],
        attachments=[Attachment(path=str(report))],
    )

    result = send(port, message, [tmp_path])

    assert result.accepted == ["joao@example.org", "ana@example.org"]
    assert result.refused == {}
    [received] = handler.received
    assert received.mail_from == "noreply@crawjud.test"
    parsed = received.parsed()
    assert parsed["Subject"] == "Execução concluída"
    assert parsed["From"] == SENDER
    assert parsed["To"] == "João Silva <joao@example.org>"
    assert parsed["Cc"] == '"Silva, Ana" <ana@example.org>'
    assert parsed["Reply-To"] == "suporte@example.org"
    assert parsed["Date"] is not None
    assert parsed["Message-ID"].endswith("@crawjud.test>")
    assert parsed.get_content_type() == "multipart/mixed"
    body = parsed.get_body(("plain",))
    html = parsed.get_body(("html",))
    assert body is not None and body.get_content().strip() == "Olá Ana"
    assert html is not None and html.get_content().strip() == "<p>Olá <b>Ana</b></p>"
    [attachment] = list(parsed.iter_attachments())
    assert attachment.get_filename() == "relatório.csv"
    assert attachment.get_content_type() == "text/csv"
    assert attachment.get_content().replace("\r\n", "\n") == "processo;status\n1;ok\n"


def test_html_only_is_a_single_part() -> None:
    mime = build(EmailMessage(to=["a@example.org"]), text=None)
    assert mime.get_content_type() == "text/html"


def test_bcc_recipients_receive_it_but_see_no_bcc_header(server: tuple[Handler, int]) -> None:
    handler, port = server
    message = EmailMessage(to=["a@example.org"], bcc=["hidden@example.org"])

    send(port, message)

    [received] = handler.received
    assert received.rcpt_tos == ["a@example.org", "hidden@example.org"]
    assert b"hidden@example.org" not in received.data
    assert received.parsed()["Bcc"] is None


def test_a_message_with_an_idempotency_key_has_a_deterministic_id() -> None:
    message = EmailMessage(to=["a@example.org"], idempotency_key="run-42-finished")
    one = deterministic_message_id("crawjud", "run-42-finished", "crawjud.test")
    assert one == deterministic_message_id("crawjud", "run-42-finished", "crawjud.test")
    assert one != deterministic_message_id("other", "run-42-finished", "crawjud.test")
    assert build(message, message_id=one)["Message-ID"] == one
    with pytest.raises(InvalidEmailError, match="idempotency_key but no message_id"):
        build(message)


# -- refused before anything is sent ---------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "message", "kwargs"),
    [
        ("subject", EmailMessage(to=["a@example.org"]), {"subject": "Hi\r\nBcc: x@evil.test"}),
        ("subject", EmailMessage(to=["a@example.org"]), {"subject": "Hi\nX-Evil: 1"}),
        ("to[0]", EmailMessage(to=["Ana\r\nBcc: x@evil.test <a@example.org>"]), {}),
        ("to[0]", EmailMessage(to=["a@example.org\r\nBcc: x@evil.test"]), {}),
        ("cc[0]", EmailMessage(to=["a@example.org"], cc=["b@exa\x00mple.org"]), {}),
        ("reply_to[0]", EmailMessage(to=["a@example.org"], reply_to=["r@x.org\nX: y"]), {}),
        ("sender", EmailMessage(to=["a@example.org"]), {"sender": "n@x.org\r\nBcc: e@x"}),
    ],
)
def test_header_injection_is_refused_and_nothing_is_sent(
    server: tuple[Handler, int], field: str, message: EmailMessage, kwargs: dict[str, Any]
) -> None:
    handler, _port = server
    with pytest.raises(InvalidEmailError, match=rf"^{field.replace('[', '.').replace(']', '.')}"):
        build(message, **kwargs)
    assert handler.received == []
    assert handler.commands == []


def test_a_line_break_in_an_attachment_filename_is_refused(tmp_path: Path) -> None:
    (tmp_path / "a.pdf").write_bytes(b"%PDF")
    attachment = Attachment(path=str(tmp_path / "a.pdf"), filename="a.pdf\r\nX-Evil: 1")
    with pytest.raises(InvalidEmailError, match=r"^attachments\[0\]\.filename"):
        build(EmailMessage(to=["a@example.org"], attachments=[attachment]), [tmp_path])


@pytest.mark.parametrize(
    "address",
    [
        "a@b@example.org",
        "a b@example.org",
        "nobody",
        "a@",
        "@example.org",
        "a@exa mple.org",
        "Ana <a@example.org>, b@example.org",
        "a@-bad.org",
        'a"b@example.org',
    ],
)
def test_odd_addresses_are_refused_naming_field_and_value(address: str) -> None:
    with pytest.raises(InvalidEmailError) as caught:
        build(EmailMessage(to=["ok@example.org"], cc=[address]))
    assert str(caught.value).startswith(f"cc[0] {address!r}")


def test_no_recipient_and_too_many_recipients_are_refused() -> None:
    with pytest.raises(InvalidEmailError, match="no recipient"):
        build(EmailMessage(to=[]))
    many = EmailMessage(
        to=[f"t{i}@example.org" for i in range(2)],
        cc=[f"c{i}@example.org" for i in range(2)],
        bcc=[f"b{i}@example.org" for i in range(2)],
    )
    with pytest.raises(InvalidEmailError, match=r"6 recipients .* the most is 5"):
        build(many, max_recipients=5)
    assert len(build(many, max_recipients=6)["To"].addresses) == 2


def test_attachments_outside_the_roots_are_refused(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    (root / "link.txt").symlink_to(outside / "secret.txt")
    (root / "sub").symlink_to(outside)
    for path in [
        outside / "secret.txt",
        root / "link.txt",
        root / "sub" / "secret.txt",
        root / ".." / "outside" / "secret.txt",
    ]:
        message = EmailMessage(to=["a@example.org"], attachments=[Attachment(path=str(path))])
        with pytest.raises(InvalidEmailError, match="outside the allowed attachment folders"):
            build(message, [root])
    missing = EmailMessage(to=["a@x.org"], attachments=[Attachment(path=str(root / "no"))])
    with pytest.raises(InvalidEmailError, match="cannot be opened"):
        build(missing, [root])


def test_an_attachment_over_the_cap_is_refused(tmp_path: Path) -> None:
    (tmp_path / "big.bin").write_bytes(b"x" * 1025)
    message = EmailMessage(
        to=["a@example.org"], attachments=[Attachment(path=str(tmp_path / "big.bin"))]
    )
    with pytest.raises(InvalidEmailError, match="larger than 1024 bytes"):
        build(message, [tmp_path], max_attachment_bytes=1024)
    assert build(message, [tmp_path], max_attachment_bytes=1025).is_multipart()


# -- server replies --------------------------------------------------------------------------


def test_a_4xx_reply_is_a_temporary_error_with_code_and_reply(
    server: tuple[Handler, int],
) -> None:
    handler, port = server
    handler.data_replies.append("451 4.3.0 try later")
    with pytest.raises(MailTemporaryError) as caught:
        send(port, EmailMessage(to=["a@example.org"]))
    assert caught.value.code == 451
    assert caught.value.reply == "4.3.0 try later"
    assert handler.received == []


def test_a_5xx_reply_is_a_rejection_with_code_and_reply(server: tuple[Handler, int]) -> None:
    handler, port = server
    handler.data_replies.append("554 5.7.1 spam")
    with pytest.raises(MailRejectedError) as caught:
        send(port, EmailMessage(to=["a@example.org"]))
    assert (caught.value.code, caught.value.reply) == (554, "5.7.1 spam")


def test_every_recipient_refused_is_a_rejection(server: tuple[Handler, int]) -> None:
    handler, port = server
    handler.refuse["a@example.org"] = "550 5.1.1 no such user"
    with pytest.raises(MailRejectedError) as caught:
        send(port, EmailMessage(to=["a@example.org"]))
    assert caught.value.code == 550
    assert "a@example.org: 550 5.1.1 no such user" in caught.value.reply


def test_every_recipient_refused_with_a_4xx_is_temporary(server: tuple[Handler, int]) -> None:
    handler, port = server
    handler.refuse["a@example.org"] = "452 4.2.2 mailbox full"
    with pytest.raises(MailTemporaryError) as caught:
        send(port, EmailMessage(to=["a@example.org"]))
    assert caught.value.code == 452


def test_a_partial_refusal_is_reported_per_recipient(server: tuple[Handler, int]) -> None:
    handler, port = server
    handler.refuse["gone@example.org"] = "550 5.1.1 no such user"
    result = send(port, EmailMessage(to=["a@example.org"], cc=["gone@example.org"]))
    assert result.accepted == ["a@example.org"]
    assert result.refused == {"gone@example.org": "550 5.1.1 no such user"}
    assert handler.received[0].rcpt_tos == ["a@example.org"]


def test_an_unreachable_server_is_a_temporary_error() -> None:
    transport = SmtpTransport(mail_settings(free_port()))
    with pytest.raises(MailTemporaryError) as caught:
        transport.send(build(EmailMessage(to=["a@example.org"])), ["a@example.org"])
    assert caught.value.code == 0
    assert "127.0.0.1" in caught.value.reply


def test_several_messages_share_one_connection(server: tuple[Handler, int]) -> None:
    handler, port = server
    messages = [EmailMessage(to=[f"r{i}@example.org"]) for i in range(5)]
    handler.data_replies.extend(["250 ok", "451 4.3.0 later"])  # the 2nd fails, the rest go on
    with SmtpTransport(mail_settings(port)) as transport:
        outcomes: list[object] = []
        for message in messages:
            try:
                outcomes.append(transport.send(build(message), envelope_recipients(message)))
            except MailTemporaryError as exc:
                outcomes.append(exc)
    assert isinstance(outcomes[1], MailTemporaryError)
    assert len(handler.received) == 3
    assert len(handler.peers) == 1  # one client port: one connection
    # Outside a with block, each send has its own connection.
    send(port, messages[0])
    send(port, messages[0])
    assert len(handler.peers) == 3


# -- TLS and credentials ---------------------------------------------------------------------


def test_starttls_not_offered_is_refused_before_credentials(
    server: tuple[Handler, int],
) -> None:
    handler, port = server
    settings = mail_settings(port, security="starttls", username="bot", password=Secret(PASSWORD))
    with pytest.raises(SettingsError, match="does not offer STARTTLS") as caught:
        SmtpTransport(settings).send(build(EmailMessage(to=["a@example.org"])), ["a@example.org"])
    assert handler.commands == []
    assert handler.received == []
    assert PASSWORD not in str(caught.value)


def test_starttls_with_a_verified_certificate_and_login(
    smtp_server: Server, certificate: tuple[Path, Path]
) -> None:
    handler, port = smtp_server(
        tls_context=server_tls(certificate),
        require_starttls=True,
        authenticator=check_password,
    )
    settings = mail_settings(port, security="starttls", username="bot", password=Secret(PASSWORD))
    transport = SmtpTransport(settings, ssl_context=client_tls(certificate))
    transport.send(build(EmailMessage(to=["a@example.org"])), ["a@example.org"])
    assert handler.commands == ["STARTTLS", "AUTH", "MAIL"]
    assert len(handler.received) == 1


def test_a_wrong_password_is_rejected_without_showing_it(
    smtp_server: Server, certificate: tuple[Path, Path]
) -> None:
    handler, port = smtp_server(
        tls_context=server_tls(certificate),
        require_starttls=True,
        authenticator=check_password,
    )
    settings = mail_settings(
        port, security="starttls", username="bot", password=Secret("wrong-" + PASSWORD)
    )
    transport = SmtpTransport(settings, ssl_context=client_tls(certificate))
    with pytest.raises(MailRejectedError) as caught:
        transport.send(build(EmailMessage(to=["a@example.org"])), ["a@example.org"])
    assert caught.value.code == 535
    assert PASSWORD not in f"{caught.value} {caught.value!r} {caught.value.__cause__!r}"
    assert handler.received == []


def test_an_untrusted_certificate_is_refused_before_anything_is_sent(
    smtp_server: Server, certificate: tuple[Path, Path]
) -> None:
    handler, port = smtp_server(tls_context=server_tls(certificate), require_starttls=True)
    settings = mail_settings(port, security="starttls", username="bot", password=Secret("x"))
    with pytest.raises(MailTemporaryError, match="could not be verified"):
        SmtpTransport(settings).send(build(EmailMessage(to=["a@example.org"])), ["a@example.org"])
    assert handler.commands == ["STARTTLS"]
    assert handler.received == []


def test_implicit_tls_is_verified(smtp_server: Server, certificate: tuple[Path, Path]) -> None:
    handler, port = smtp_server(ssl_context=server_tls(certificate))
    settings = mail_settings(port, security="tls")
    message = build(EmailMessage(to=["a@example.org"]))
    with pytest.raises(MailTemporaryError, match="could not be verified"):
        SmtpTransport(settings).send(message, ["a@example.org"])
    SmtpTransport(settings, ssl_context=client_tls(certificate)).send(message, ["a@example.org"])
    assert len(handler.received) == 1


# -- the bytes sent -------------------------------------------------------------------------

WIRE_CASES: list[tuple[dict[str, Any], str]] = [
    ({"to": ["user1@example.org"]}, "Execução concluída"),
    ({"to": ["Ana <ana@example.org>", "b@example.org"]}, "Plain subject (with) a: colon"),
    ({"to": ["João Silva <joao@example.org>"], "cc": ['"Silva, Ana" <ana@example.org>']}, "ok"),
    ({"to": ["Ana S. Silva <ana@example.org>"], "reply_to": ["suporte@example.org"]}, "x" * 90),
    ({"to": [f"user{n}@example.org" for n in range(8)]}, "two  spaces, =?utf-8?q?x?="),
    ({"to": ["=?utf-8?q?Z=C3=A9?= <ze@example.org>"], "bcc": ["hidden@example.org"]}, " edge "),
]


def aligned(data: bytes, like: bytes) -> bytes:
    """``data`` with its boundaries renamed to those of ``like``, in order of appearance."""
    for ours, theirs in zip(
        re.findall(rb'boundary="([^"]+)"', data),
        re.findall(rb'boundary="([^"]+)"', like),
        strict=True,
    ):
        data = data.replace(ours, theirs)
    return data


@pytest.mark.parametrize(("fields", "subject"), WIRE_CASES)
@pytest.mark.parametrize("parts", ["both", "text", "html", "attachment"])
def test_the_wire_writer_writes_what_the_stdlib_writes(
    fields: dict[str, Any], subject: str, parts: str, tmp_path: Path
) -> None:
    report = tmp_path / "relatório.csv"
    report.write_text("processo;status\n1;ok\n", encoding="utf-8")
    attachments = [Attachment(path=str(report))] if parts == "attachment" else []
    checked = check_message(
        EmailMessage(**fields, attachments=attachments),
        subject=subject,
        html=None if parts == "text" else "<p>Olá <b>Ana</b></p>\n" * 40,
        text=None if parts == "html" else "Olá Ana, ção. " * 30,
        sender=SENDER,
        attachment_roots=[tmp_path],
    )
    now = datetime(2026, 11, 28, 10, 27, 5, tzinfo=timezone.utc)
    writer = WireWriter()
    written = writer.write(checked, now=now)
    again = writer.write(checked, now=now)  # from the remembered parts (without attachments)
    reference = mime_message(checked, now=now).as_bytes(policy=email.policy.SMTP)
    assert aligned(written, reference) == reference
    assert aligned(again, reference) == reference
    assert b"hidden@example.org" not in written


# -- outbox and choice -----------------------------------------------------------------------


def test_the_outbox_writes_parseable_eml_files(tmp_path: Path) -> None:
    folder = tmp_path / "outbox"
    message = EmailMessage(to=["a@example.org"], bcc=["hidden@example.org"])
    with OutboxTransport(folder) as transport:
        first = transport.send(build(message), envelope_recipients(message))
        transport.send(build(message), envelope_recipients(message))
    assert first.accepted == ["a@example.org", "hidden@example.org"]
    assert first.path is not None and first.path.endswith(".eml")
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    files = sorted(os.listdir(folder))
    assert len(files) == 2 and all(name.endswith(".eml") for name in files)  # no temp file left
    parsed = email.message_from_bytes(Path(first.path).read_bytes(), policy=email.policy.default)
    assert parsed["To"] == "a@example.org"
    assert parsed["Bcc"] is None
    assert parsed.get_body(("plain",)) is not None


def test_transport_for_chooses_smtp_with_a_host_else_the_outbox(tmp_path: Path) -> None:
    smtp = transport_for(Settings(mail=MailSettings(host="smtp.example.org")))
    assert isinstance(smtp, SmtpTransport) and smtp.kind == "smtp"
    default = transport_for(Settings(data_dir=tmp_path))
    assert isinstance(default, OutboxTransport) and default.folder == tmp_path / "outbox"
    chosen = transport_for(Settings(mail=MailSettings(outbox_dir=tmp_path / "mine")))
    assert isinstance(chosen, OutboxTransport) and chosen.folder == tmp_path / "mine"
