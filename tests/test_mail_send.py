"""The mail contracts through a real worker, to a real SMTP server on loopback (aiosmtpd)."""

from __future__ import annotations

import dataclasses
import email
import email.policy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from celery.contrib.testing.worker import start_worker

from crawjud_tasks import InvalidEmailError, MailRejectedError, Settings, create_app
from crawjud_tasks.mail.contracts import EmailMessage, send_bulk, send_email
from crawjud_tasks.testing import RedisServer, close_app, retry_waits, settings_for
from tests.smtp_server import Recorder


@pytest.fixture
def mail_app(
    crawjud_redis: RedisServer, crawjud_data_dir: Path, smtp: tuple[Recorder, int]
) -> Iterator[Celery]:
    settings = settings_for(
        crawjud_redis,
        crawjud_data_dir,
        mail={"host": "127.0.0.1", "port": smtp[1], "security": "none", "timeout": 10},
    )
    app = create_app(settings)
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
        yield app
    close_app(app)


def finished(locale: str = "en") -> EmailMessage:
    from crawjud_tasks.mail._templates import example_context

    return EmailMessage(
        to=["Ana Souza <ana@example.org>"],
        bcc=["audit@example.org"],
        template="bot_finished",
        locale=locale,  # type: ignore[arg-type]  # a Literal, given as str in tests
        context=example_context("bot_finished") or {},
    )


def test_a_templated_email_is_sent_with_both_parts(
    mail_app: Celery, smtp: tuple[Recorder, int]
) -> None:
    recorder, _ = smtp
    receipt = send_email.using(mail_app).delay(finished()).get(timeout=30)
    assert receipt.transport == "smtp"
    assert sorted(receipt.accepted) == ["ana@example.org", "audit@example.org"]
    assert receipt.refused == {}
    [(recipients, _)] = recorder.messages
    assert sorted(recipients) == ["ana@example.org", "audit@example.org"]
    [parsed] = recorder.parsed()
    assert parsed["Message-ID"] == receipt.message_id
    assert parsed["To"] == "Ana Souza <ana@example.org>"
    assert parsed["Bcc"] is None
    assert parsed["Subject"]
    html = parsed.get_body(("html",))
    text = parsed.get_body(("plain",))
    assert html is not None and text is not None
    assert "<html" in html.get_content().lower()


def test_the_same_key_is_sent_once(mail_app: Celery, smtp: tuple[Recorder, int]) -> None:
    recorder, _ = smtp
    message = EmailMessage(
        to=["ana@example.org"], subject="Relatório", text="ok", idempotency_key="report-7"
    )
    first = send_email.using(mail_app).delay(message).get(timeout=30)
    second = send_email.using(mail_app).delay(message).get(timeout=30)
    assert second.duplicate and not first.duplicate
    assert second.message_id == first.message_id
    assert len(recorder.messages) == 1


def test_a_key_repeated_in_one_bulk_is_sent_once(
    mail_app: Celery, smtp: tuple[Recorder, int]
) -> None:
    recorder, _ = smtp
    message = EmailMessage(
        to=["ana@example.org"], subject="Relatório", text="ok", idempotency_key="report-8"
    )
    other = EmailMessage(to=["bia@example.org"], subject="Relatório", text="ok")
    receipts = send_bulk.using(mail_app).delay([message, other, message]).get(timeout=30)
    assert [r.duplicate for r in receipts] == [False, False, True]
    assert receipts[2].message_id == receipts[0].message_id
    assert [recipients for recipients, _ in recorder.messages] == [
        ["ana@example.org"],
        ["bia@example.org"],
    ]


def test_a_templated_bulk_gives_each_message_its_own_headers(
    mail_app: Celery, smtp: tuple[Recorder, int]
) -> None:
    recorder, _ = smtp
    messages = [
        dataclasses.replace(finished(), to=[f"Pessoa {n} <p{n}@example.org>"], cc=[], bcc=[])
        for n in range(3)
    ]
    receipts = send_bulk.using(mail_app).delay(messages).get(timeout=30)
    parsed = recorder.parsed()
    assert [m["To"] for m in parsed] == [f"Pessoa {n} <p{n}@example.org>" for n in range(3)]
    assert [m["Message-ID"] for m in parsed] == [r.message_id for r in receipts]
    assert len({r.message_id for r in receipts}) == 3
    for message in parsed:
        html = message.get_body(("html",))
        text = message.get_body(("plain",))
        assert html is not None and "Ana Souza" in html.get_content()
        assert text is not None and "Ana Souza" in text.get_content()


def test_a_4xx_reply_is_retried_with_the_policy(
    mail_app: Celery, smtp: tuple[Recorder, int]
) -> None:
    recorder, _ = smtp
    recorder.next_replies = ["451 4.3.0 try again later", "451 4.3.0 try again later"]
    message = EmailMessage(to=["ana@example.org"], subject="Oi", text="retried")
    with retry_waits(False):
        receipt = send_email.using(mail_app).delay(message).get(timeout=30)
    assert receipt.accepted == ["ana@example.org"]
    assert len(recorder.messages) == 1
    assert recorder.next_replies == []


def test_a_5xx_reply_fails_at_once_with_the_servers_reply(
    mail_app: Celery, smtp: tuple[Recorder, int]
) -> None:
    recorder, _ = smtp
    recorder.next_replies = ["554 5.7.1 message refused", "250 OK"]
    message = EmailMessage(to=["ana@example.org"], subject="Oi", text="refused")
    with pytest.raises(MailRejectedError, match="554") as refused:
        send_email.using(mail_app).delay(message).get(timeout=30)
    assert refused.value.code == 554
    assert recorder.next_replies == ["250 OK"]  # not retried
    assert recorder.messages == []


def test_header_injection_is_refused_and_nothing_is_sent(
    mail_app: Celery, smtp: tuple[Recorder, int]
) -> None:
    recorder, _ = smtp
    message = EmailMessage(
        to=["ana@example.org"], subject="Oi\r\nBcc: victim@example.org", text="x"
    )
    with pytest.raises(InvalidEmailError):
        send_email.using(mail_app).delay(message).get(timeout=30)
    assert recorder.messages == []


def test_bulk_sends_over_one_connection(mail_app: Celery, smtp: tuple[Recorder, int]) -> None:
    recorder, _ = smtp
    messages = [
        EmailMessage(to=[f"user{n}@example.org"], subject=f"Aviso {n}", text=f"corpo {n}")
        for n in range(20)
    ]
    receipts = send_bulk.using(mail_app).delay(messages).get(timeout=60)
    assert [r.accepted for r in receipts] == [[f"user{n}@example.org"] for n in range(20)]
    assert len(recorder.messages) == 20
    assert recorder.connections == 1


@pytest.mark.slow
def test_without_a_host_mail_goes_to_the_outbox(
    crawjud_settings: Settings, crawjud_data_dir: Path
) -> None:
    app = create_app(crawjud_settings)
    try:
        with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
            receipt = send_email.using(app).delay(finished("pt_BR")).get(timeout=30)
    finally:
        close_app(app)
    assert receipt.transport == "outbox"
    assert receipt.path is not None
    path = Path(receipt.path)
    assert path.parent == crawjud_data_dir / "outbox"
    parsed = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert parsed["Message-ID"] == receipt.message_id


def test_the_smtp_policy_fits_inside_a_short_visibility_timeout() -> None:
    from crawjud_tasks.mail._send import smtp_policy

    assert smtp_policy(None).max_delay == 305.0
    assert smtp_policy(3600).max_delay == 305.0
    short = smtp_policy(30)
    assert short.max_delay < 30
    assert short.attempts == 6


def test_attachments_come_from_the_mail_roots_or_else_the_bots_inputs_and_reports(
    tmp_path: Path,
) -> None:
    from crawjud_tasks.mail._send import attachment_roots

    bots = {"allowed_roots": [str(tmp_path / "in")]}
    by_default = Settings.from_mapping({"data_dir": str(tmp_path), "bots": bots})
    assert attachment_roots(by_default) == (tmp_path / "in", tmp_path / "reports")
    own = Settings.from_mapping(
        {"data_dir": str(tmp_path), "bots": bots, "mail": {"attachment_roots": [str(tmp_path)]}}
    )
    assert attachment_roots(own) == (tmp_path,)


def test_hostile_context_is_escaped_and_never_evaluated(
    mail_app: Celery, smtp: tuple[Recorder, int]
) -> None:
    recorder, _ = smtp
    from crawjud_tasks.mail._templates import example_context

    context = (example_context("bot_finished") or {}) | {
        "user_name": "<script>alert(1)</script>",
        "bot_name": "{{ 7*7 }}",
    }
    message = EmailMessage(to=["ana@example.org"], template="bot_finished", context=context)
    send_email.using(mail_app).delay(message).get(timeout=30)
    [parsed] = recorder.parsed()
    html_part = parsed.get_body(("html",))
    text_part = parsed.get_body(("plain",))
    assert html_part is not None and text_part is not None
    html, text = html_part.get_content(), text_part.get_content()
    assert "<script>" not in html
    assert "&lt;script&gt;" in html
    assert "{{ 7*7 }}" in text and "49" not in text


def test_a_missing_variable_fails_clearly_and_sends_nothing(
    mail_app: Celery, smtp: tuple[Recorder, int]
) -> None:
    recorder, _ = smtp
    context = dict(example_context_of("bot_finished"))
    del context["successes"]
    message = EmailMessage(to=["ana@example.org"], template="bot_finished", context=context)
    with pytest.raises(InvalidEmailError, match="successes"):
        send_email.using(mail_app).delay(message).get(timeout=30)
    assert recorder.messages == []


def example_context_of(name: str) -> dict[str, Any]:
    from crawjud_tasks.mail._templates import example_context

    return example_context(name) or {}
