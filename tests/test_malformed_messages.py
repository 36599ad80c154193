"""One bad message never stops a queue (issue 13, items 6-8).

Messages that no producer of this library writes (a forger's, a buggy client's, a corrupted one)
are pushed straight into a queue of a real Redis, in front of a good one; a real worker process
rejects and records each (body never logged), stays up, and runs the good one.
"""

from __future__ import annotations

import base64
import json
import uuid
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from celery import Celery

import crawjud_tasks
from crawjud_tasks import create_app, poison_messages
from crawjud_tasks.testing import RedisServer, WorkerProcess, close_app, settings_for, wait_for
from tests.examples import contracts as c
from tests.helpers import ROOT, python_path

pytestmark = pytest.mark.slow

NAMESPACE = "mm"
QUEUE = NAMESPACE  # the default queue: where examples.* contracts go
SECRET = "s3cr3t-in-the-body"


def envelope(
    body: bytes | str | None = None,
    *,
    headers: Any = None,
    task: str = f"{NAMESPACE}.examples.record",
    **header_changes: Any,
) -> dict[str, Any]:
    """A kombu Redis envelope as a producer writes it, for ``task`` with ``body``."""
    task_id = str(uuid.uuid4())
    if body is None:
        body = json.dumps([[f"marker-{SECRET}"], {}, {}])
    raw = body.encode() if isinstance(body, str) else body
    if headers is None:
        headers = {
            "lang": "py",
            "task": task,
            "id": task_id,
            "retries": 0,
            "timelimit": [None, None],
            "root_id": task_id,
            "argsrepr": f"('marker-{SECRET}',)",
            "kwargsrepr": "{}",
            **header_changes,
        }
    return {
        "body": base64.b64encode(raw).decode(),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": headers,
        "properties": {
            "correlation_id": task_id,
            "delivery_mode": 2,
            "delivery_info": {"exchange": "", "routing_key": QUEUE},
            "priority": 0,
            "body_encoding": "base64",
            "delivery_tag": str(uuid.uuid4()),
        },
    }


def without_id() -> dict[str, Any]:
    message = envelope()
    del message["headers"]["id"]
    return message


#: Each shape the adversarial trial found, as the raw bytes pushed into the queue.
MALFORMED: dict[str, Callable[[], bytes]] = {
    "body-a-json-string": lambda: json.dumps(envelope(json.dumps(f"x-{SECRET}"))).encode(),
    "body-a-one-item-list": lambda: json.dumps(envelope(json.dumps([SECRET]))).encode(),
    "headers-a-string": lambda: json.dumps(envelope(headers=f"h-{SECRET}")).encode(),
    "headers-a-list": lambda: json.dumps(envelope(headers=[SECRET])).encode(),
    "timelimit-not-numeric": lambda: json.dumps(envelope(timelimit=["abc", "x"])).encode(),
    "retries-a-string": lambda: json.dumps(envelope(retries="many")).encode(),
    "headers-without-id": lambda: json.dumps(without_id()).encode(),
    "envelope-not-json": f"{{not json {SECRET}".encode,
    "envelope-a-list": lambda: json.dumps([SECRET]).encode(),
    "body-not-base64": lambda: json.dumps(envelope() | {"body": f"%%{SECRET}%%"}).encode(),
    "invalid-utf8-body": lambda: json.dumps(
        envelope(b'[["\xff\xfe' + SECRET.encode() + b'"], {}, {}]')
    ).encode(),
}


class Rig:
    """A redis-server, a host app on it, and a worker of the example implementations."""

    def __init__(self, directory: Path) -> None:
        self.server = RedisServer(directory / "redis", appendonly=True)
        self.settings = settings_for(self.server, directory / "data", namespace=NAMESPACE)
        self.server.start()
        self.host: Celery = create_app(self.settings)
        self.broker = self.server.client(0)
        self.workers: list[WorkerProcess] = []

    def worker(self) -> WorkerProcess:
        source = str(Path(crawjud_tasks.__file__).parents[1])
        env = {
            **self.settings.to_env(),
            "EXAMPLES_REDIS_URL": self.server.url_for(2),
            "EXAMPLES_LOG_KEY": "mm:log",
            "PYTHONPATH": python_path(source, str(ROOT)),
        }
        process = WorkerProcess(
            self.host,
            app_spec="tests.examples.worker:app",
            env=env,
            loglevel="INFO",
            pool="prefork",
            concurrency=1,
        )
        self.workers.append(process)
        return process.start()

    def push(self, raw: bytes) -> None:
        self.broker.lpush(QUEUE, raw)

    def close(self) -> None:
        for process in self.workers:
            process.stop()
        self.broker.close()
        close_app(self.host)
        self.server.stop()


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    made = Rig(tmp_path)
    try:
        yield made
    finally:
        made.close()


def test_malformed_messages_are_rejected_recorded_and_the_worker_keeps_consuming(
    rig: Rig,
) -> None:
    for build in MALFORMED.values():
        rig.push(build())
    worker = rig.worker()
    # The good message behind them runs, on the same worker, which is still up.
    assert c.add.using(rig.host).delay(20, 22).get(timeout=30) == 42
    assert worker.running
    wait_for(
        lambda: rig.broker.llen(QUEUE) == 0 and rig.broker.hlen(f"{NAMESPACE}:unacked") == 0,
        what="the queue and the unacked hash to empty",
    )
    # Each bad one is recorded with the poison records, and never run.
    records = wait_for(
        lambda: (found := poison_messages(rig.host)) and len(found) >= len(MALFORMED) and found,
        what="a poison record per malformed message",
    )
    assert len(records) == len(MALFORMED)
    assert all(record.reason for record in records)
    assert SECRET not in json.dumps([str(record) for record in records])
    assert SECRET not in worker.output()
    assert rig.server.client(2).llen("mm:log") == 0  # nothing ran


def test_a_restarted_worker_is_not_killed_by_the_same_message(rig: Rig) -> None:
    """No crash loop: the bad message does not come back to kill the next worker."""
    rig.push(MALFORMED["headers-a-string"]())
    first = rig.worker()
    assert c.add.using(rig.host).delay(1, 2).get(timeout=30) == 3
    first.stop()
    second = rig.worker()
    assert c.add.using(rig.host).delay(2, 3).get(timeout=30) == 5
    assert second.running


def test_a_compressed_message_that_inflates_past_the_bound_is_refused(rig: Rig) -> None:
    """0.3 MB of zlib that inflates to 300 MiB: refused before it is inflated whole."""
    bomb = zlib.compress(b"[[" + b" " * (300 * 1024 * 1024) + b"], {}, {}]", 9)
    message = envelope(bomb, compression="application/x-gzip")
    message["headers"]["compression"] = "application/x-gzip"
    rig.push(json.dumps(message).encode())
    worker = rig.worker()
    assert c.add.using(rig.host).delay(4, 5).get(timeout=60) == 9
    assert worker.running
    records = wait_for(lambda: poison_messages(rig.host), what="the bomb's poison record")
    assert "compressed" in records[0].reason or "inflate" in records[0].reason
    # The worker never held the inflated body: its peak memory stays far below 300 MiB.
    status = Path(f"/proc/{worker.pid}/status").read_text()
    peak_kib = int(
        next(line for line in status.splitlines() if line.startswith("VmHWM")).split()[1]
    )
    assert peak_kib < 250 * 1024
