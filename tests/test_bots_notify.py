"""A run's notifications, sent by a real worker through the mail contract to a loopback SMTP
server: one for the start and one for each way a run ends; a failed send never fails the run."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from email.message import EmailMessage as MimeMessage
from pathlib import Path
from typing import Any

import pytest
from celery import Celery

from crawjud_tasks import Settings, create_app
from crawjud_tasks._app import close_app
from crawjud_tasks.bots import cancel_run, run_events
from crawjud_tasks.bots.contracts import BotInput, BotParameters, RunStatus, execute_bot
from crawjud_tasks.testing import RedisServer, WorkerProcess, settings_for, wait_for
from tests.helpers import bot_worker
from tests.smtp_server import Recorder, start_smtp

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def mailbox() -> Iterator[tuple[Recorder, int]]:
    recorder = Recorder()
    controller, port = start_smtp(recorder)
    yield recorder, port
    controller.stop()


@pytest.fixture(scope="module")
def notify_settings(
    crawjud_redis_server: RedisServer,
    tmp_path_factory: pytest.TempPathFactory,
    mailbox: tuple[Recorder, int],
) -> Settings:
    return settings_for(
        crawjud_redis_server,
        tmp_path_factory.mktemp("nt"),
        namespace="nt",
        mail={"host": "127.0.0.1", "port": mailbox[1], "security": "none", "timeout": 10},
        bots={"logs_url": "https://crawjud.example.org/logs/{run_id}"},
    )


@pytest.fixture(scope="module")
def notify_host(notify_settings: Settings) -> Iterator[Celery]:
    app = create_app(notify_settings)
    yield app
    close_app(app)


@pytest.fixture(scope="module")
def notify_worker(
    notify_host: Celery, notify_settings: Settings, crawjud_redis_server: RedisServer
) -> Iterator[WorkerProcess]:
    process = bot_worker(
        notify_host, notify_settings, crawjud_redis_server, pool="threads", concurrency=4
    )
    process.start()
    yield process
    process.stop()
    process.log_path.unlink(missing_ok=True)


def rows(n: int, **actions: str) -> BotInput:
    return BotInput.inline(
        [{"NUMERO": f"{i:07d}", "ACTION": actions.get(f"r{i + 2}", "")} for i in range(n)]
    )


def received(mailbox: Recorder, run_id: str, count: int) -> list[MimeMessage]:
    def enough() -> list[MimeMessage]:
        found = [m for m in mailbox.parsed() if run_id in str(m["Subject"])]
        return found if len(found) >= count else []

    return wait_for(enough, what=f"{count} notifications of {run_id}")


def text_of(message: MimeMessage) -> str:
    part: Any = message.get_body(preferencelist=("plain",))
    return str(part.get_content())


def test_a_completed_run_notifies_its_start_and_its_end_with_the_report(
    notify_host: Celery, notify_worker: WorkerProcess, mailbox: tuple[Recorder, int]
) -> None:
    run_id = f"ok-{uuid.uuid4().hex[:8]}"
    result = (
        execute_bot.using(notify_host)
        .delay(
            "test.echo",
            7,
            BotParameters(
                input=rows(4, r3="fail"),
                notify=["Ana Souza <ana@example.org>"],
                user_name="Ana Souza",
                locale="en",
                run_id=run_id,
            ),
        )
        .get(timeout=60)
    )
    assert result.status is RunStatus.COMPLETED_WITH_ERRORS
    started, finished = sorted(
        received(mailbox[0], run_id, 2), key=lambda m: "started" not in str(m["Subject"])
    )
    assert str(started["Subject"]) == f"Bot test.echo: run {run_id} started"
    assert f"https://crawjud.example.org/logs/{run_id}" in text_of(started)
    assert "Items to process: 4" in text_of(started)
    assert str(finished["Subject"]) == f"Bot test.echo: run {run_id} finished"
    body = text_of(finished)
    assert "Hello Ana Souza" in body and "Succeeded: 3" in body and "Failed: 1" in body
    attachments = list(finished.iter_attachments())
    assert [a.get_filename() for a in attachments] == [Path(result.report or "").name]
    assert finished["To"] == "Ana Souza <ana@example.org>"


@pytest.mark.parametrize(
    ("actions", "subject"),
    [({"r3": "fatal"}, "failed"), ({}, "cancelled")],
)
def test_a_run_that_fails_or_is_cancelled_says_so(
    notify_host: Celery,
    notify_worker: WorkerProcess,
    mailbox: tuple[Recorder, int],
    actions: dict[str, str],
    subject: str,
) -> None:
    run_id = f"{subject}-{uuid.uuid4().hex[:8]}"
    if subject == "cancelled":
        cancel_run(notify_host, run_id, by="Bruno Lima")
    result = (
        execute_bot.using(notify_host)
        .delay(
            "test.echo",
            7,
            BotParameters(
                input=rows(3, **actions), notify=["ana@example.org"], locale="en", run_id=run_id
            ),
        )
        .get(timeout=60)
    )
    assert result.status.value == subject
    # A cancelled run never started, so it sends no start notification.
    messages = received(mailbox[0], run_id, 2 if subject == "failed" else 1)
    subjects = sorted(str(m["Subject"]) for m in messages)
    assert subjects[0] == f"Bot test.echo: run {run_id} {subject}"
    last = next(m for m in messages if str(m["Subject"]) == subjects[0])
    body = text_of(last)
    if subject == "failed":
        assert "the court refused the login" in body
    else:
        assert "Bruno Lima" in body


def test_a_notification_that_cannot_be_sent_never_fails_the_run(
    notify_host: Celery, notify_worker: WorkerProcess, mailbox: tuple[Recorder, int]
) -> None:
    recorder = mailbox[0]
    run_id = f"refused-{uuid.uuid4().hex[:8]}"
    with recorder.lock:
        recorder.next_replies.extend(["554 5.7.1 relay denied"] * 2)
    result = (
        execute_bot.using(notify_host)
        .delay(
            "test.echo", 7, BotParameters(input=rows(2), notify=["ana@example.org"], run_id=run_id)
        )
        .get(timeout=60)
    )
    assert result.status is RunStatus.COMPLETED

    def two_error_lines() -> list[str]:
        lines = [
            e.message or ""
            for e in run_events(notify_host, run_id)
            if e.kind == "log" and e.level == "error"
        ]
        return lines if len(lines) == 2 else []

    lines = wait_for(two_error_lines)
    assert sorted(lines) == [
        "the bot_finished notification was not sent: MailRejectedError: the mail server "
        "refused the message with 554: 5.7.1 relay denied",
        "the bot_started notification was not sent: MailRejectedError: the mail server "
        "refused the message with 554: 5.7.1 relay denied",
    ]
