"""Every way a bot run's task can end, the run ends: a row that kills its process at each try (a
poison message), the hard time limit, a revoke (running or queued), a cancel followed by a
killed worker, a worker gone with its message. Each leaves the run's state ended with the
reason, a "finished" event, a report of what was checkpointed and the notification. Real Redis,
real prefork workers, a loopback SMTP server.
"""

from __future__ import annotations

import csv
import io
import os
import signal
import time
import uuid
import zipfile
from collections.abc import Iterator
from email.message import EmailMessage as MimeMessage
from typing import Any

import pytest
import redis
from celery import Celery

from crawjud_tasks import PoisonMessageError, Settings, create_app
from crawjud_tasks._app import close_app
from crawjud_tasks.bots import cancel_run, run_events, run_state
from crawjud_tasks.bots.contracts import (
    BotInput,
    BotParameters,
    RunStatus,
    execute_bot,
    reap_runs,
)
from crawjud_tasks.testing import RedisServer, WorkerProcess, wait_for
from tests.helpers import bot_settings, bot_worker
from tests.smtp_server import Recorder, start_smtp

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]
#: Seconds before the broker redelivers a message whose worker died (the run lease lives half).
VISIBILITY = 6


@pytest.fixture(scope="module")
def smtp() -> Iterator[tuple[Recorder, int]]:
    recorder = Recorder()
    controller, port = start_smtp(recorder)
    yield recorder, port
    controller.stop()


@pytest.fixture(scope="module")
def mailbox(smtp: tuple[Recorder, int]) -> Recorder:
    return smtp[0]


@pytest.fixture(scope="module")
def ends_settings(
    crawjud_redis_server: RedisServer,
    tmp_path_factory: pytest.TempPathFactory,
    smtp: tuple[Recorder, int],
) -> Settings:
    port = smtp[1]
    return bot_settings(
        crawjud_redis_server,
        tmp_path_factory,
        "en",
        visibility_timeout=VISIBILITY,
        mail={"host": "127.0.0.1", "port": port, "security": "none", "timeout": 10},
    )


@pytest.fixture(scope="module")
def host(ends_settings: Settings) -> Iterator[Celery]:
    app = create_app(ends_settings)
    yield app
    close_app(app)


@pytest.fixture(scope="module")
def worker(
    host: Celery, ends_settings: Settings, crawjud_redis_server: RedisServer
) -> Iterator[WorkerProcess]:
    process = bot_worker(host, ends_settings, crawjud_redis_server)
    process.start()
    yield process
    process.stop()
    process.log_path.unlink(missing_ok=True)


@pytest.fixture
def ledger(crawjud_redis_server: RedisServer) -> Iterator[redis.Redis]:
    client = crawjud_redis_server.client(2)
    yield client
    client.close()


def rows(n: int, **actions: str) -> BotInput:
    return BotInput.inline(
        [{"NUMERO": f"{i:07d}", "ACTION": actions.get(f"r{i + 2}", "")} for i in range(n)]
    )


def parameters(run_id: str, n: int, **options: Any) -> BotParameters:
    actions = options.pop("actions", {})
    return BotParameters(
        input=rows(n, **actions),
        options=options,
        run_id=run_id,
        notify=["ana@example.org"],
        locale="en",
    )


def processed(ledger: redis.Redis, run_id: str) -> list[int]:
    raw: Any = ledger.lrange(f"ledger:{run_id}", 0, -1)
    return sorted(int(x) for x in raw)


def ended(host: Celery, run_id: str, timeout: float = 60) -> Any:
    """The run's state once it ended."""

    def done() -> Any:
        state = run_state(host, run_id)
        return state if state is not None and state.finished else None

    return wait_for(done, timeout=timeout, what=f"the end of run {run_id}")


def successes(report: str | None) -> list[list[str]]:
    assert report is not None
    with zipfile.ZipFile(report) as archive:
        name = next(n for n in archive.namelist() if n.endswith("successes.csv"))
        data = archive.read(name)
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig")), delimiter=";"))[1:]


def mail_for(mailbox: Recorder, run_id: str, word: str) -> MimeMessage:
    def found() -> MimeMessage | None:
        return next(
            (m for m in mailbox.parsed() if str(m["Subject"]).endswith(f"run {run_id} {word}")),
            None,
        )

    return wait_for(found, what=f"the {word} notification of {run_id}")


def assert_ended(
    host: Celery, mailbox: Recorder, run_id: str, status: str, reason: str, done: int
) -> None:
    """The run ended ``status`` naming ``reason``: counts, report, event and notification."""
    state = ended(host, run_id)
    assert state.phase == status
    assert reason in (state.error or "")
    assert state.counts.succeeded == done
    if done:
        assert len(successes(state.report)) == done
    else:
        assert state.report is None
    finished = [e for e in run_events(host, run_id) if e.kind == "finished"]
    assert len(finished) == 1 and finished[0].status is not None
    assert finished[0].status.value == status
    mail_for(mailbox, run_id, status)


def test_a_row_that_kills_its_process_at_each_try_ends_the_run_failed(
    host: Celery, worker: WorkerProcess, mailbox: Recorder, ledger: redis.Redis
) -> None:
    run_id = f"poison-{uuid.uuid4().hex[:8]}"
    handle = execute_bot.using(host).delay(
        "test.echo", 7, parameters(run_id, 6, actions={"r5": "die"})
    )
    with pytest.raises(PoisonMessageError):
        handle.get(timeout=90)
    assert_ended(host, mailbox, run_id, "failed", "died at each try", 3)
    assert processed(ledger, run_id) == [0, 1, 2]


def test_a_run_killed_by_its_hard_time_limit_ends_failed_with_what_it_did(
    host: Celery, worker: WorkerProcess, mailbox: Recorder, ledger: redis.Redis
) -> None:
    run_id = f"limit-{uuid.uuid4().hex[:8]}"
    signature = execute_bot.using(host).s("test.echo", 7, parameters(run_id, 40, delay=0.25))
    signature.apply_async(time_limit=3)
    state = ended(host, run_id)
    assert 0 < state.counts.succeeded < 40
    assert_ended(
        host, mailbox, run_id, "failed", "hard time limit (3 s)", len(processed(ledger, run_id))
    )


def test_a_running_run_revoked_with_terminate_ends_failed_with_what_it_did(
    host: Celery, worker: WorkerProcess, mailbox: Recorder, ledger: redis.Redis
) -> None:
    run_id = f"revoked-{uuid.uuid4().hex[:8]}"
    handle = execute_bot.using(host).delay("test.echo", 7, parameters(run_id, 40, delay=0.1))
    wait_for(lambda: len(processed(ledger, run_id)) >= 3)
    handle.revoke(terminate=True)
    state = ended(host, run_id)
    assert_ended(
        host, mailbox, run_id, "failed", "revoked and its process terminated", state.counts.done
    )
    assert state.counts.succeeded == len(processed(ledger, run_id))


def test_a_queued_run_revoked_ends_failed_without_running(
    host: Celery, worker: WorkerProcess, mailbox: Recorder, ledger: redis.Redis
) -> None:
    run_id = f"queued-{uuid.uuid4().hex[:8]}"
    signature = execute_bot.using(host).s("test.echo", 7, parameters(run_id, 3))
    signature.apply_async(countdown=2).revoke()
    assert_ended(host, mailbox, run_id, "failed", "revoked before it started", 0)
    assert processed(ledger, run_id) == []


def test_a_run_cancelled_then_killed_reports_what_it_did(
    host: Celery, worker: WorkerProcess, mailbox: Recorder, ledger: redis.Redis
) -> None:
    run_id = f"cancelled-{uuid.uuid4().hex[:8]}"
    handle = execute_bot.using(host).delay(
        "test.echo", 7, parameters(run_id, 20, delay=0.02, block_at=9)
    )

    def blocked() -> int | None:
        raw: Any = ledger.get(f"blocked:{run_id}")
        return None if raw is None else int(raw)

    pid = wait_for(blocked)
    wait_for(lambda: len(processed(ledger, run_id)) == 7)
    cancel_run(host, run_id, by="Bruno Lima")
    os.kill(pid, signal.SIGKILL)
    result = handle.get(timeout=60)
    assert result.status is RunStatus.CANCELLED
    assert result.counts.succeeded == 7
    assert len(successes(result.report)) == 7
    assert processed(ledger, run_id) == list(range(7))
    assert_ended(host, mailbox, run_id, "cancelled", "", 7)


def test_a_run_abandoned_by_its_worker_is_ended_by_the_reaper(
    host: Celery,
    worker: WorkerProcess,
    ends_settings: Settings,
    crawjud_redis_server: RedisServer,
    mailbox: Recorder,
    ledger: redis.Redis,
) -> None:
    # A worker of its own (on a queue of its own), killed whole mid-run; its message is then
    # lost (as a Redis restart without persistence loses it): nothing will deliver the run again.
    doomed = bot_worker(host, ends_settings, crawjud_redis_server, concurrency=1)
    doomed.command += ["--queues", "en.doomed"]
    doomed.start()
    run_id = f"abandoned-{uuid.uuid4().hex[:8]}"
    try:
        signature = execute_bot.using(host).s("test.echo", 7, parameters(run_id, 40, delay=0.1))
        signature.apply_async(queue="en.doomed")
        wait_for(lambda: len(processed(ledger, run_id)) >= 3)
        assert doomed.pid is not None
        os.killpg(doomed.pid, signal.SIGKILL)
    finally:
        doomed.stop()
        doomed.log_path.unlink(missing_ok=True)
    client = crawjud_redis_server.client()
    try:
        client.delete("en:unacked", "en:unacked_index")
    finally:
        client.close()
    state = run_state(host, run_id)
    assert state is not None and state.phase == "running"
    # Not yet: its lease may still be alive, and it was active moments ago.
    assert run_id not in reap_runs.using(host).delay().get(timeout=30)
    time.sleep(VISIBILITY + VISIBILITY / 2 + 1)  # the visibility timeout plus the lease's ttl
    assert run_id in reap_runs.using(host).delay().get(timeout=60)
    done = len(processed(ledger, run_id))
    assert_ended(host, mailbox, run_id, "failed", "abandoned", done)
    assert run_id not in reap_runs.using(host).delay().get(timeout=30)
