"""Bot runs at scale, on real worker processes and Redis: parallel runs across two worker
processes with one SIGKILLed, a poison chunk, the batch checkpoint's window after a kill, and a
1,000,000-row input with the worker's memory sampled."""

from __future__ import annotations

import collections
import csv
import io
import os
import signal
import threading
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery

from crawjud_tasks import Settings, create_app
from crawjud_tasks._app import close_app
from crawjud_tasks.bots import run_state
from crawjud_tasks.bots.contracts import (
    BotInput,
    BotParameters,
    BotRunResult,
    RunStatus,
    execute_bot,
)
from crawjud_tasks.testing import RedisServer, WorkerProcess, wait_for
from tests.helpers import bot_settings, bot_worker

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]
#: The batch checkpoint's window, in items (``bots.checkpoint_batch``).
BATCH = 256
#: The documented bound of a worker process's memory on a 1,000,000-row run (docs/bots.md).
RSS_BOUND = 150 * 1024 * 1024


@pytest.fixture(scope="module")
def scale_settings(
    crawjud_redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    return bot_settings(
        crawjud_redis_server,
        tmp_path_factory,
        "sc",
        visibility_timeout=20,
        # The 1,000,000-row report has its CSV files alone: XlsxWriter takes ~15 s on it here.
        bots={"checkpoint_batch": BATCH, "events_max": 1000, "report_xlsx_max_items": 100_000},
    )


@pytest.fixture(scope="module")
def host(scale_settings: Settings) -> Iterator[Celery]:
    app = create_app(scale_settings)
    yield app
    close_app(app)


@pytest.fixture(scope="module")
def workers(
    host: Celery, scale_settings: Settings, crawjud_redis_server: RedisServer
) -> Iterator[list[WorkerProcess]]:
    """Two worker processes of concurrency 1."""
    started = [
        bot_worker(host, scale_settings, crawjud_redis_server, concurrency=1) for _ in range(2)
    ]
    for process in started:
        process.start()
    yield started
    for process in started:
        process.stop()


@pytest.fixture
def ledger(crawjud_redis_server: RedisServer) -> Iterator[redis.Redis]:
    client = crawjud_redis_server.client(2)
    yield client
    client.close()


def write_input(settings: Settings, rows: int) -> str:
    path = settings.bots.allowed_roots[0] / f"in-{uuid.uuid4().hex[:8]}.csv"
    path.write_text("NUMERO\n" + "".join(f"{n}\n" for n in range(rows)))
    return str(path)


def done(ledger: redis.Redis, run_id: str) -> collections.Counter[int]:
    raw: Any = ledger.lrange(f"ledger:{run_id}", 0, -1)
    return collections.Counter(int(x) for x in raw)


def kill_a_chunk(ledger: redis.Redis, run_id: str, after: int) -> int:
    """SIGKILL the process running the run's first chunk once ``after`` items are done."""
    wait_for(lambda: ledger.llen(f"ledger:{run_id}") >= after, timeout=60)
    pid = int(ledger.lindex(f"pids:{run_id}", 0) or 0)
    os.kill(pid, signal.SIGKILL)
    return pid


def report_rows(result: BotRunResult) -> list[int]:
    """The ROW of each item in the report's successes and errors."""
    assert result.report is not None
    rows: list[int] = []
    with zipfile.ZipFile(result.report) as archive:
        for name in ("successes.csv", "errors.csv"):
            table = list(
                csv.reader(io.StringIO(archive.read(name).decode("utf-8-sig")), delimiter=";")
            )
            at = table[0].index("ROW")
            rows += [int(row[at]) for row in table[1:]]
    return sorted(rows)


def expected_failed(rows: int) -> int:
    return sum(1 for n in range(rows) if n % 7 == 3)  # test.fast fails these


@pytest.mark.parametrize("chunks", [2, 4])
def test_a_parallel_run_with_a_killed_worker_process_reports_each_item_once(
    host: Celery,
    workers: list[WorkerProcess],
    scale_settings: Settings,
    ledger: redis.Redis,
    chunks: int,
) -> None:
    total = 6000
    run_id = f"sp{chunks}-{uuid.uuid4().hex[:8]}"
    handle = execute_bot.using(host).delay(
        "test.fast",
        7,
        BotParameters(
            input=BotInput.from_file(write_input(scale_settings, total)),
            parallelism=chunks,
            run_id=run_id,
        ),
    )
    kill_a_chunk(ledger, run_id, after=total // (2 * chunks))
    result = handle.get(timeout=120)
    assert result.status is RunStatus.COMPLETED_WITH_ERRORS
    failed = expected_failed(total)
    assert (result.counts.total, result.counts.succeeded, result.counts.failed) == (
        total,
        total - failed,
        failed,
    )
    assert report_rows(result) == [n + 2 for n in range(total)]  # each item once, in the report
    seen = done(ledger, run_id)
    assert set(seen) == set(range(total))  # nothing lost
    assert sum(seen.values()) - total <= BATCH  # at most one window done again


def test_a_batch_run_killed_mid_way_redoes_at_most_one_window(
    host: Celery, workers: list[WorkerProcess], scale_settings: Settings, ledger: redis.Redis
) -> None:
    total = 20_000
    run_id = f"sb-{uuid.uuid4().hex[:8]}"
    handle = execute_bot.using(host).delay(
        "test.fast",
        7,
        BotParameters(input=BotInput.from_file(write_input(scale_settings, total)), run_id=run_id),
    )
    kill_a_chunk(ledger, run_id, after=5000)
    result = handle.get(timeout=120)
    assert result.counts.done == total and result.counts.failed == expected_failed(total)
    assert report_rows(result) == [n + 2 for n in range(total)]
    seen = done(ledger, run_id)
    assert set(seen) == set(range(total))
    redone = sum(seen.values()) - total
    assert 0 <= redone <= BATCH, redone


def test_a_chunk_that_always_kills_its_process_ends_the_run_failed_naming_it(
    host: Celery, workers: list[WorkerProcess], scale_settings: Settings
) -> None:
    run_id = f"sx-{uuid.uuid4().hex[:8]}"
    handle = execute_bot.using(host).delay(
        "test.fast",
        7,
        BotParameters(
            input=BotInput.from_file(write_input(scale_settings, 200)),
            options={"kill_at": 150},  # in the second chunk
            parallelism=2,
            run_id=run_id,
        ),
    )
    state = wait_for(
        lambda: (s := run_state(host, run_id)) is not None and s.result is not None and s,
        timeout=150,
    )
    assert state.phase == "failed"
    assert state.result is not None and state.result.status is RunStatus.FAILED
    error = state.result.error or ""
    assert error.startswith("chunk 1 failed: PoisonMessageError"), error
    assert state.result.report is not None  # what the other chunk did is reported
    with pytest.raises(Exception):  # noqa: B017, PT011  (the chord's own failure: Celery's ChordError)
        handle.get(timeout=10)


def test_a_million_rows_run_in_bounded_worker_memory(
    host: Celery, workers: list[WorkerProcess], scale_settings: Settings, tmp_path: Path
) -> None:
    total = 1_000_000
    run_id = f"sm-{uuid.uuid4().hex[:8]}"
    handle = execute_bot.using(host).delay(
        "test.noop",
        7,
        BotParameters(input=BotInput.from_file(write_input(scale_settings, total)), run_id=run_id),
    )
    peak = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.wait(0.1):
            for worker in workers:
                for pid in children(worker.pid or 0):
                    peak = max(peak, rss(pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        result = handle.get(timeout=170)
    finally:
        stop.set()
        sampler.join()
    assert result.status is RunStatus.COMPLETED and result.counts.succeeded == total
    print(f"peak worker RSS {peak / 2**20:.0f} MiB")
    assert 0 < peak < RSS_BOUND, f"peak RSS {peak / 2**20:.0f} MiB"


def children(pid: int) -> list[int]:
    try:
        return [
            int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        ]
    except OSError:
        return []


def rss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0
