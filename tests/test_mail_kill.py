"""A mail worker killed after the SMTP server accepted a message and before the acknowledgement.

Real worker processes on their own redis-server (persistence on, a visibility timeout of a few
seconds, kombu's restore sweep every second), real SMTP on loopback (aiosmtpd). The SMTP handler
itself injects the fault at the exact moment it matters, so nothing depends on timing:

- it freezes the worker's main process (SIGSTOP) before it answers 250: the pool child gets the
  250, writes the sent-ledger, ends its run and stores the result, but the frozen main process
  can never acknowledge the message; the worker is then killed and the message comes back by the
  visibility timeout to a second worker, which drops it (the end-of-run mark);
- or it kills the worker before it accepts the second message of a bulk send: the redelivered
  copy runs again, finds the first message in the sent-ledger and sends only the second.

Either way every message reaches the server exactly once.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from celery import Celery

import crawjud_tasks
from crawjud_tasks import create_app
from crawjud_tasks._delivery._at_least_once import _ENDED
from crawjud_tasks._state import app_state
from crawjud_tasks.mail.contracts import EmailMessage, send_bulk, send_email
from crawjud_tasks.testing import RedisServer, WorkerProcess, close_app, settings_for, wait_for
from tests.helpers import RESTORE_EVERY_SECOND, python_path
from tests.smtp_server import Recorder, start_smtp

pytestmark = pytest.mark.slow

NAMESPACE = "mk"
VISIBILITY_TIMEOUT = 4.0
#: kombu's restore sweep holds a Redis lock (``unacked_mutex``) that lives 300 s by default: a
#: worker frozen or killed while holding it would stop every sweep for that long.
TRANSPORT_OPTIONS = {**RESTORE_EVERY_SECOND, "unacked_mutex_expire": 5}


class Trap(Recorder):
    """A :class:`Recorder` that, at the first DATA for a given recipient, acts on the worker."""

    def __init__(self) -> None:
        super().__init__()
        #: recipient -> (signal, process group?, accept the message?), fired once.
        self.traps: dict[str, tuple[int, bool, bool]] = {}
        self.worker_pid: int | None = None
        self.fired = threading.Event()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            trap = next((self.traps.pop(r) for r in envelope.rcpt_tos if r in self.traps), None)
        if trap is None:
            return await super().handle_DATA(server, session, envelope)
        signum, group, accept = trap
        assert self.worker_pid is not None
        (os.killpg if group else os.kill)(self.worker_pid, signum)
        self.fired.set()
        if not accept:
            return "451 4.3.0 not accepted"  # the worker is gone; nothing was received
        return await super().handle_DATA(server, session, envelope)

    def recipients(self) -> list[str]:
        return [recipient for recipients, _ in self.messages for recipient in recipients]


class MailRig:
    """A redis-server, an SMTP server, a host app on them and the workers a test starts."""

    def __init__(self, directory: Path) -> None:
        self.smtp = Trap()
        self.controller, port = start_smtp(self.smtp)
        self.server = RedisServer(directory / "redis", appendonly=True)
        self.settings = settings_for(
            self.server,
            directory / "data",
            namespace=NAMESPACE,
            visibility_timeout=VISIBILITY_TIMEOUT,
            celery={"broker_transport_options": TRANSPORT_OPTIONS},
            mail={"host": "127.0.0.1", "port": port, "security": "none", "timeout": 10},
        )
        self.server.start()
        try:
            self.host: Celery = create_app(self.settings)
        except BaseException:
            self.server.stop()  # a rig that could not be built leaves no server behind
            raise
        self.broker = self.server.client(0)
        self.workers: list[WorkerProcess] = []

    def worker(self, **options: Any) -> WorkerProcess:
        """Start a worker of the library's own tasks, importing the package under test."""
        source = str(Path(crawjud_tasks.__file__).parents[1])
        env = {"PYTHONPATH": python_path(source)}
        options.setdefault("loglevel", "INFO")
        process = WorkerProcess(self.host, settings=self.settings, env=env, **options)
        self.workers.append(process)
        return process.start()

    def unacked(self) -> int:
        return int(self.broker.hlen(f"{NAMESPACE}:unacked"))  # type: ignore[arg-type]  # redis-py types replies as sync-or-async

    def value(self, key: str) -> str | None:
        raw: Any = app_state(self.host).redis.get(f"{NAMESPACE}:{key}")
        return None if raw is None else raw.decode()

    def ledger(self, message_id: str) -> str | None:
        return self.value(f"mail:sent:{message_id}")

    def ledger_keys(self) -> list[str]:
        keys: Any = app_state(self.host).redis.keys(f"{NAMESPACE}:mail:sent:*")
        return sorted(key.decode() for key in keys)

    def close(self) -> None:
        for process in self.workers:
            process.kill()
            print(f"--- worker {process.nodename} ---\n{process.output()}")
            process.log_path.unlink(missing_ok=True)
        self.broker.close()
        close_app(self.host)
        self.server.stop()
        self.controller.stop()


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[MailRig]:
    made = MailRig(tmp_path)
    yield made
    made.close()


def message(to: str, key: str | None = None) -> EmailMessage:
    return EmailMessage(to=[to], subject=f"Para {to}", text="corpo", idempotency_key=key)


def deliveries(rig: MailRig, task_id: str) -> int:
    """How many times the workers received ``task_id`` (each logs it at INFO)."""
    return sum(w.output().count(f"[{task_id}] received") for w in rig.workers)


def test_a_worker_killed_after_the_server_accepted_and_before_the_ack_sends_once(
    rig: MailRig,
) -> None:
    first = rig.worker(pool="prefork", concurrency=1)
    rig.smtp.worker_pid = first.pid
    # Freeze the main process as the message arrives; the pool child still gets the 250.
    rig.smtp.traps["ana@example.org"] = (signal.SIGSTOP, False, True)
    result = send_email.using(rig.host).delay(message("ana@example.org"))
    wait_for(rig.smtp.fired.is_set, what="the message to reach the server")
    counter = f"deliveries:{NAMESPACE}.mail.send_email:{result.id}:0"
    # The child wrote the ledger, ended its run (the end-of-run mark) and stored the result.
    wait_for(rig.ledger_keys, what="the sent-ledger entry")
    wait_for(lambda: rig.value(counter) == str(_ENDED), what="the end-of-run mark")
    wait_for(result.ready, what="the first run's result")
    assert rig.unacked() == 1  # never acknowledged: the main process is frozen
    first.kill()  # SIGKILL to the whole group, frozen or not

    second = rig.worker()
    wait_for(
        lambda: "delivered again after its run ended" in second.output(),
        timeout=60,
        what="the redelivered copy to be dropped",
    )
    wait_for(lambda: rig.unacked() == 0, what="the copy to be acknowledged")
    assert rig.broker.llen(NAMESPACE) == 0
    # The redelivery was counted on top of the end-of-run mark, and ran nothing.
    assert rig.value(counter) == str(_ENDED + 1)
    assert deliveries(rig, result.id) == 2
    receipt = result.get(timeout=20)
    assert receipt.accepted == ["ana@example.org"]
    assert not receipt.duplicate
    assert rig.smtp.recipients() == ["ana@example.org"]  # exactly one message received
    [parsed] = rig.smtp.parsed()
    assert parsed["Message-ID"] == receipt.message_id
    assert rig.ledger_keys() == [f"{NAMESPACE}:mail:sent:{receipt.message_id}"]


def test_a_bulk_send_killed_between_two_messages_sends_each_once(rig: MailRig) -> None:
    first = rig.worker(pool="prefork", concurrency=1)
    rig.smtp.worker_pid = first.pid
    # The server accepts the first message; the worker dies before it accepts the second.
    rig.smtp.traps["bia@example.org"] = (signal.SIGKILL, True, False)
    result = send_bulk.using(rig.host).delay(
        [message("ana@example.org"), message("bia@example.org")]
    )
    wait_for(rig.smtp.fired.is_set, what="the second message to reach the server")
    wait_for(lambda: not first.running, what="the worker to die")
    assert rig.smtp.recipients() == ["ana@example.org"]
    [sent] = rig.ledger_keys()
    assert not result.ready()

    rig.worker()
    receipts = result.get(timeout=60)
    # The redelivered copy ran again: the first message came from the ledger, not the server.
    assert [r.duplicate for r in receipts] == [True, False]
    assert [r.accepted for r in receipts] == [["ana@example.org"], ["bia@example.org"]]
    assert sent == f"{NAMESPACE}:mail:sent:{receipts[0].message_id}"
    assert rig.smtp.recipients() == ["ana@example.org", "bia@example.org"]  # each once
    assert [m["Message-ID"] for m in rig.smtp.parsed()] == [r.message_id for r in receipts]
    assert rig.value(f"deliveries:{NAMESPACE}.mail.send_bulk:{result.id}:0") == str(_ENDED)
    assert deliveries(rig, result.id) == 2
    wait_for(lambda: rig.unacked() == 0, what="the message to be acknowledged")
    assert rig.broker.llen(NAMESPACE) == 0
