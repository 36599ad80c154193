"""Bot runs end to end: a host app without bots, real worker processes with the test bots, real
Redis. Each item's side effect is counted in a ledger the test bot writes (``tests/examples/bots``).
"""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import threading
import time
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery

from crawjud_tasks import (
    BotParameterError,
    PayloadError,
    SecretNotFoundError,
    Settings,
    UnknownBotError,
    create_app,
)
from crawjud_tasks._app import close_app
from crawjud_tasks.bots import cancel_run, run_events, run_state
from crawjud_tasks.bots.contracts import (
    MAX_INLINE_ROWS,
    BotInput,
    BotParameters,
    BotRunResult,
    RunStatus,
    SecretRef,
    execute_bot,
)
from crawjud_tasks.testing import RedisServer, WorkerProcess, wait_for
from tests.helpers import bot_settings, bot_worker

SECRET = "s3cr3t-Planted-Value-91x"
pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def runs_settings(
    crawjud_redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    return bot_settings(crawjud_redis_server, tmp_path_factory, "bt", visibility_timeout=20)


@pytest.fixture(scope="module")
def inputs(runs_settings: Settings) -> Path:
    return runs_settings.bots.allowed_roots[0]


@pytest.fixture(scope="module")
def runs_host(runs_settings: Settings) -> Iterator[Celery]:
    """The host service's app: it knows no bot."""
    app = create_app(runs_settings)
    yield app
    close_app(app)


@pytest.fixture(scope="module")
def runs_worker(
    runs_host: Celery, runs_settings: Settings, crawjud_redis_server: RedisServer
) -> Iterator[WorkerProcess]:
    """A prefork worker with two pool processes."""
    process = bot_worker(
        runs_host, runs_settings, crawjud_redis_server, env={"CRAWJUD_SECRET_TEST_LOGIN": SECRET}
    )
    process.start()
    yield process
    process.stop()
    process.log_path.unlink(missing_ok=True)


@pytest.fixture
def ledger(crawjud_redis_server: RedisServer) -> Iterator[redis.Redis]:
    client = crawjud_redis_server.client(2)
    yield client
    client.close()


def processed(ledger: redis.Redis, run_id: str) -> list[int]:
    raw: Any = ledger.lrange(f"ledger:{run_id}", 0, -1)
    return sorted(int(x) for x in raw)


def rows(n: int, **actions: str) -> BotInput:
    """``n`` rows numbered 1..n; ``actions`` maps ``r<row number>`` to an ACTION."""
    return BotInput.inline(
        [{"numero": f"{i:07d}", "action": actions.get(f"r{i + 2}", "")} for i in range(n)]
    )


def run(
    host: Celery, bot: str = "test.echo", *, timeout: float = 60, **params: Any
) -> BotRunResult:
    params.setdefault("run_id", f"run-{uuid.uuid4().hex[:10]}")
    handle = execute_bot.using(host).delay(bot, 7, BotParameters(**params))
    return handle.get(timeout=timeout)


def blocked_pid(host: Celery, run_id: str) -> int | None:
    """The process id the test bot logged as it started blocking (``block_at``), if it did."""
    for event in run_events(host, run_id):
        if event.kind == "log" and (event.message or "").startswith("blocking in pid"):
            return int((event.message or "").rsplit(" ", 1)[1])
    return None


def report_files(result: BotRunResult) -> dict[str, bytes]:
    assert result.report is not None
    with zipfile.ZipFile(result.report) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def read_csv(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig")), delimiter=";"))


# -- a whole run -------------------------------------------------------------------------------


def test_a_full_run_processes_each_item_once_and_reports_it(
    runs_host: Celery, runs_worker: WorkerProcess, ledger: redis.Redis
) -> None:
    result = run(runs_host, input=rows(6, r3="fail", r5="skip", r6="boom"), options={"label": "x"})

    assert result.status is RunStatus.COMPLETED_WITH_ERRORS
    assert (result.counts.total, result.counts.succeeded) == (6, 3)
    assert (result.counts.failed, result.counts.skipped) == (2, 1)
    assert result.bot == "test.echo" and result.user_id == 7
    assert result.error is None
    assert result.error_sample == [
        "row 3: lawsuit 0000001 not found",
        "row 6: ValueError: unexpected page",
    ]
    assert processed(ledger, result.run_id) == [0, 1, 2, 3, 4, 5]
    state = run_state(runs_host, result.run_id)
    assert state is not None and state.phase == "completed_with_errors"
    assert state.result == result and state.report == result.report


def test_the_event_stream_tells_the_whole_run(
    runs_host: Celery, runs_worker: WorkerProcess
) -> None:
    result = run(runs_host, input=rows(3, r3="fail"))
    events = list(run_events(runs_host, result.run_id))
    kinds = [event.kind for event in events]
    assert kinds[0] == "started" and kinds[-1] == "finished"
    items = [event for event in events if event.kind == "item"]
    assert [(e.row, e.level) for e in items] == [(2, "success"), (3, "error"), (4, "success")]
    assert items[1].message == "lawsuit 0000001 not found"
    last = items[-1].counts
    assert last is not None
    assert (last.total, last.succeeded, last.failed, last.remaining) == (3, 2, 1, 0)
    assert events[-1].status is RunStatus.COMPLETED_WITH_ERRORS
    assert events[0].data["total"] == 3


def test_following_a_run_streams_its_events_live(
    runs_host: Celery, runs_worker: WorkerProcess
) -> None:
    run_id = f"run-{uuid.uuid4().hex[:10]}"
    seen: list[str] = []
    follower = threading.Thread(
        target=lambda: seen.extend(
            e.kind for e in run_events(runs_host, run_id, follow=True, timeout=60)
        )
    )
    follower.start()
    execute_bot.using(runs_host).delay(
        "test.echo", 7, BotParameters(input=rows(5), options={"delay": 0.1}, run_id=run_id)
    ).get(timeout=60)
    follower.join(timeout=30)
    assert not follower.is_alive()
    assert seen[0] == "started" and seen[-1] == "finished"
    assert seen.count("item") == 5


def test_the_report_holds_every_row_cell_by_cell(
    runs_host: Celery, runs_worker: WorkerProcess
) -> None:
    source = BotInput.inline(
        [
            {"NUMERO": "0000001", "ACTION": "", "NOTA": '=HYPERLINK("http://x")'},
            {"NUMERO": "0000002", "ACTION": "fail", "NOTA": "@SUM(1)"},
            {"NUMERO": "0000003", "ACTION": "", "NOTA": "ok"},
        ]
    )
    result = run(runs_host, input=source)
    files = report_files(result)
    successes = read_csv(next(v for k, v in files.items() if k.endswith("successes.csv")))
    errors = read_csv(next(v for k, v in files.items() if k.endswith("errors.csv")))
    header = successes[0]
    assert "NUMERO" in header and "RESULT" in header and "NOTA" in header
    by_number = {row[header.index("NUMERO")]: row for row in successes[1:]}
    assert set(by_number) == {"0000001", "0000003"}
    assert by_number["0000001"][header.index("RESULT")] == "ok:0000001"
    assert by_number["0000001"][header.index("NOTA")] == '\'=HYPERLINK("http://x")'
    assert len(errors) == 2
    reason = errors[1][errors[0].index("MOTIVO_ERRO")]
    assert reason == "lawsuit 0000002 not found"
    assert errors[1][errors[0].index("NOTA")] == "'@SUM(1)"
    summary = json.loads(next(v for k, v in files.items() if k.endswith("summary.json")))
    assert summary["status"] == "completed_with_errors"
    xlsx = next((v for k, v in files.items() if k.endswith(".xlsx")), None)
    assert xlsx is not None
    import openpyxl

    book = openpyxl.load_workbook(io.BytesIO(xlsx), read_only=True)
    assert "Sucessos" in book.sheetnames and "Erros" in book.sheetnames
    sheet_rows = list(book["Erros"].iter_rows(values_only=True))
    assert sheet_rows[1][list(sheet_rows[0]).index("NOTA")] == "'@SUM(1)"


def test_a_file_input_inside_the_allowed_roots(
    runs_host: Celery, runs_worker: WorkerProcess, inputs: Path, ledger: redis.Redis
) -> None:
    path = inputs / f"{uuid.uuid4().hex[:8]}.csv"
    path.write_text(" numero ;Action\n0000011;\n0000012;fail\n\n0000013;\n", encoding="utf-8-sig")
    result = run(runs_host, input=BotInput.from_file(str(path)))
    assert (result.counts.total, result.counts.succeeded, result.counts.failed) == (3, 2, 1)
    assert result.error_sample == ["row 3: lawsuit 0000012 not found"]
    assert processed(ledger, result.run_id) == [0, 1, 2]


# -- concurrency -------------------------------------------------------------------------------


def test_two_runs_at_once_in_two_processes_do_not_interfere(
    runs_host: Celery, runs_worker: WorkerProcess, ledger: redis.Redis
) -> None:
    handles = [
        execute_bot.using(runs_host).delay(
            "test.echo",
            user,
            BotParameters(input=rows(8), options={"delay": 0.05, "label": label}),
        )
        for user, label in ((1, "first"), (2, "second"))
    ]
    results = [handle.get(timeout=60) for handle in handles]
    for result, user, label in zip(results, (1, 2), ("first", "second"), strict=True):
        assert result.status is RunStatus.COMPLETED
        assert result.user_id == user
        assert processed(ledger, result.run_id) == list(range(8))
        successes = read_csv(
            next(v for k, v in report_files(result).items() if k.endswith("successes.csv"))
        )
        column = successes[0].index("RESULT")
        assert {row[column].split(":")[0] for row in successes[1:]} == {label}
    # They overlapped in time: each started before the other finished.
    first, second = results
    assert first.started_at < second.finished_at and second.started_at < first.finished_at


@pytest.mark.slow
def test_two_runs_at_once_in_one_threaded_worker_do_not_interfere(
    runs_host: Celery,
    runs_settings: Settings,
    crawjud_redis_server: RedisServer,
    ledger: redis.Redis,
) -> None:
    threaded = bot_worker(
        runs_host,
        runs_settings,
        crawjud_redis_server,
        pool="threads",
        concurrency=4,
        env={"CRAWJUD_SECRET_TEST_LOGIN": SECRET},
    )
    threaded.start()
    try:
        handles = [
            execute_bot.using(runs_host).delay(
                "test.echo",
                7,
                BotParameters(input=rows(6), options={"delay": 0.05, "label": f"t{i}"}),
            )
            for i in range(3)
        ]
        results = [handle.get(timeout=60) for handle in handles]
    finally:
        threaded.stop()
    for i, result in enumerate(results):
        assert result.status is RunStatus.COMPLETED
        assert result.counts.succeeded == 6
        assert processed(ledger, result.run_id) == list(range(6))
        successes = read_csv(
            next(v for k, v in report_files(result).items() if k.endswith("successes.csv"))
        )
        column = successes[0].index("RESULT")
        assert {row[column].split(":")[0] for row in successes[1:]} == {f"t{i}"}


# -- failure modes -----------------------------------------------------------------------------


def test_a_fatal_error_ends_the_run_as_failed_with_a_partial_report(
    runs_host: Celery, runs_worker: WorkerProcess, ledger: redis.Redis
) -> None:
    result = run(runs_host, input=rows(6, r4="fatal"))
    assert result.status is RunStatus.FAILED
    assert result.error == "the court refused the login"
    assert (result.counts.succeeded, result.counts.total) == (2, 6)
    assert processed(ledger, result.run_id) == [0, 1]
    successes = read_csv(
        next(v for k, v in report_files(result).items() if k.endswith("successes.csv"))
    )
    assert len(successes) == 3


def test_a_setup_that_fails_ends_the_run_as_failed(
    runs_host: Celery, runs_worker: WorkerProcess
) -> None:
    result = run(runs_host, "test.broken_setup", input=rows(2))
    assert result.status is RunStatus.FAILED
    assert result.error == "the court site is down for maintenance"
    assert result.counts.done == 0


def test_max_failures_stops_a_run_gone_wrong(
    runs_host: Celery, runs_worker: WorkerProcess, ledger: redis.Redis
) -> None:
    result = run(runs_host, input=rows(10, r3="fail", r4="fail", r5="fail"), max_failures=2)
    assert result.status is RunStatus.FAILED
    assert result.error == "stopped after 2 failed items (max_failures=2)"
    assert result.counts.failed == 2 and result.counts.succeeded == 1
    assert processed(ledger, result.run_id) == [0, 1, 2]


def test_transient_errors_are_retried_inline(
    runs_host: Celery, runs_worker: WorkerProcess, ledger: redis.Redis
) -> None:
    result = run(runs_host, input=rows(3, r3="flaky:2", r4="flaky:9"))
    assert result.counts.succeeded == 2 and result.counts.failed == 1
    assert result.error_sample == ["row 4: TransientError: court site busy (attempt 4)"]
    warnings = [
        e.message or ""
        for e in run_events(runs_host, result.run_id)
        if e.kind == "log" and e.level == "warning"
    ]
    assert sum("row 3: attempt" in w for w in warnings) == 2
    assert sum("row 4: attempt" in w for w in warnings) == 3
    assert processed(ledger, result.run_id) == [0, 1]


def test_an_unknown_bot_is_refused(runs_host: Celery, runs_worker: WorkerProcess) -> None:
    with pytest.raises(UnknownBotError, match=r"'test\.ecko'; did you mean 'test\.echo'"):
        run(runs_host, "test.ecko", input=rows(1))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"colour": "red"}, "bot 'test.echo' has no option 'colour'"),
        ({"delay": "soon"}, "bot 'test.echo': bad options"),
    ],
)
def test_bad_options_are_refused(
    runs_host: Celery, runs_worker: WorkerProcess, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(BotParameterError, match=message):
        run(runs_host, input=rows(1), options=options)


def test_an_input_without_the_required_column_is_refused(
    runs_host: Celery, runs_worker: WorkerProcess
) -> None:
    with pytest.raises(BotParameterError, match="needs the column"):
        run(runs_host, input=BotInput.inline([{"OTHER": "1"}]))


def test_a_file_outside_the_allowed_roots_is_refused(
    runs_host: Celery, runs_worker: WorkerProcess, tmp_path: Path
) -> None:
    outside = tmp_path / "x.csv"
    outside.write_text("NUMERO\n1\n")
    with pytest.raises(BotParameterError, match="allowed_roots"):
        run(runs_host, input=BotInput.from_file(str(outside)))


def test_an_unknown_secret_is_refused(runs_host: Celery, runs_worker: WorkerProcess) -> None:
    with pytest.raises(SecretNotFoundError, match="nobody"):
        run(runs_host, input=rows(1), credentials=SecretRef("nobody"))


def test_oversized_inline_input_is_refused_at_dispatch() -> None:
    with pytest.raises(PayloadError, match=r"pass BotInput\.from_file"):
        BotInput.inline([{"NUMERO": str(i)} for i in range(MAX_INLINE_ROWS + 1)])


def test_a_raw_credential_in_the_options_is_refused_at_dispatch() -> None:
    with pytest.raises(PayloadError, match="SecretRef"):
        BotParameters(input=rows(1), options={"senha": "hunter2"})


# -- idempotency, cancel -----------------------------------------------------------------------


def test_a_second_dispatch_with_the_same_run_id_returns_the_first_result(
    runs_host: Celery, runs_worker: WorkerProcess, ledger: redis.Redis
) -> None:
    first = run(runs_host, input=rows(3))
    again = run(runs_host, input=rows(3), run_id=first.run_id)
    assert again == first
    assert processed(ledger, first.run_id) == [0, 1, 2]


def test_a_run_cancelled_before_it_starts_never_starts(
    runs_host: Celery, runs_worker: WorkerProcess, ledger: redis.Redis
) -> None:
    run_id = f"run-{uuid.uuid4().hex[:10]}"
    assert cancel_run(runs_host, run_id) is None
    result = run(runs_host, input=rows(3), run_id=run_id)
    assert result.status is RunStatus.CANCELLED
    assert result.counts.done == 0
    assert processed(ledger, run_id) == []


def test_a_running_run_stops_before_its_next_item_when_cancelled(
    runs_host: Celery, runs_worker: WorkerProcess, ledger: redis.Redis
) -> None:
    run_id = f"run-{uuid.uuid4().hex[:10]}"
    handle = execute_bot.using(runs_host).delay(
        "test.echo", 7, BotParameters(input=rows(40), options={"delay": 0.1}, run_id=run_id)
    )
    wait_for(lambda: len(processed(ledger, run_id)) >= 3)
    before = cancel_run(runs_host, run_id)
    assert before is not None and before.phase == "running"
    result = handle.get(timeout=30)
    assert result.status is RunStatus.CANCELLED
    done = processed(ledger, run_id)
    assert 3 <= len(done) < 40
    assert done == list(range(len(done)))
    assert result.counts.succeeded == len(done)
    successes = read_csv(
        next(v for k, v in report_files(result).items() if k.endswith("successes.csv"))
    )
    assert len(successes) == len(done) + 1


# -- a worker killed mid-run -------------------------------------------------------------------


def test_a_run_whose_worker_child_is_killed_resumes_with_each_item_once(
    runs_host: Celery, runs_worker: WorkerProcess, ledger: redis.Redis
) -> None:
    run_id = f"run-{uuid.uuid4().hex[:10]}"
    handle = execute_bot.using(runs_host).delay(
        "test.echo",
        7,
        BotParameters(input=rows(20), options={"delay": 0.02, "block_at": 9}, run_id=run_id),
    )

    pid = wait_for(lambda: blocked_pid(runs_host, run_id))
    assert processed(ledger, run_id) == list(range(7))  # rows 2..8 done, row 9 blocks
    killed_at = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    # The bot blocks once per run: the resumed copy goes through row 9.
    result = handle.get(timeout=90)
    assert result.status is RunStatus.COMPLETED
    assert result.counts.succeeded == 20
    assert processed(ledger, run_id) == list(range(20))
    resumed = [
        e for e in run_events(runs_host, run_id) if e.kind == "started" and e.data.get("resumed_at")
    ]
    assert resumed and resumed[0].data["resumed_at"] == 7
    assert time.monotonic() - killed_at < 60


# -- secrets -----------------------------------------------------------------------------------


def test_no_secret_value_is_left_anywhere_after_a_run(
    runs_host: Celery,
    runs_worker: WorkerProcess,
    crawjud_redis_server: RedisServer,
    runs_settings: Settings,
) -> None:
    result = run(
        runs_host,
        input=rows(3, r3="fail", r4="boom"),
        credentials=SecretRef("test-login"),
        options={"leak": True},
    )
    assert result.counts.total == 3
    needle = SECRET.encode()
    for db in (0, 1, 2):
        client = crawjud_redis_server.client(db)
        try:
            for key in client.scan_iter(count=1000):
                assert needle not in key
                assert needle not in _dump(client, key), (db, key)
        finally:
            client.close()
    for event in run_events(runs_host, result.run_id):
        assert SECRET not in repr(event)
    assert SECRET not in repr(result)
    for name, content in report_files(result).items():
        assert needle not in content, name
    assert SECRET not in runs_worker.output()
    logged = [e.message or "" for e in run_events(runs_host, result.run_id) if e.kind == "log"]
    assert any("password is ***" in line for line in logged)


def _dump(client: redis.Redis, key: bytes) -> bytes:
    """Every byte a key holds, whatever its type."""
    kind: Any = client.type(key)
    raw: Any = b""
    if kind == b"string":
        return client.get(key) or b""  # type: ignore[return-value]  # redis-py types replies as sync-or-async
    if kind == b"hash":
        raw = client.hgetall(key)
        return b"\n".join(k + b"=" + v for k, v in raw.items())
    if kind == b"stream":
        raw = client.xrange(key)
        return b"\n".join(b"".join(k + v for k, v in fields.items()) for _, fields in raw)
    if kind == b"list":
        raw = client.lrange(key, 0, -1)
    elif kind == b"set":
        raw = client.smembers(key)
    elif kind == b"zset":
        raw = client.zrange(key, 0, -1)
    return b"\n".join(raw) if raw else b""


# -- parallel runs -----------------------------------------------------------------------------


def test_a_parallel_run_splits_its_items_across_workers_and_reports_once(
    runs_host: Celery, runs_worker: WorkerProcess, ledger: redis.Redis
) -> None:
    run_id = f"par-{uuid.uuid4().hex[:10]}"
    handle = execute_bot.using(runs_host).delay(
        "test.echo",
        7,
        BotParameters(
            input=rows(30, r5="fail"), options={"delay": 0.02}, parallelism=3, run_id=run_id
        ),
    )
    result = handle.get(timeout=90)
    assert isinstance(result, BotRunResult)
    assert result.status is RunStatus.COMPLETED_WITH_ERRORS
    assert (result.counts.total, result.counts.succeeded, result.counts.failed) == (30, 29, 1)
    assert processed(ledger, run_id) == list(range(30))
    events = list(run_events(runs_host, run_id))
    assert [e.kind for e in events].count("started") == 1
    assert [e.kind for e in events].count("finished") == 1
    assert any(e.kind == "progress" and e.counts is not None for e in events)
    successes = read_csv(
        next(v for k, v in report_files(result).items() if k.endswith("successes.csv"))
    )
    assert len(successes) == 30
    state = run_state(runs_host, run_id)
    assert state is not None and state.result == result


def test_a_parallel_run_with_a_killed_worker_process_ends_with_each_item_once(
    runs_host: Celery, runs_worker: WorkerProcess, ledger: redis.Redis
) -> None:
    run_id = f"pk-{uuid.uuid4().hex[:10]}"
    handle = execute_bot.using(runs_host).delay(
        "test.echo",
        7,
        BotParameters(
            input=rows(20),
            options={"delay": 0.02, "block_at": 6},
            parallelism=2,
            run_id=run_id,
        ),
    )

    pid = wait_for(lambda: blocked_pid(runs_host, run_id))
    os.kill(pid, signal.SIGKILL)
    result = handle.get(timeout=90)
    assert result.status is RunStatus.COMPLETED
    assert result.counts.succeeded == 20
    assert processed(ledger, run_id) == list(range(20))
    resumed = [
        e.message for e in run_events(runs_host, run_id) if "resumed after" in (e.message or "")
    ]
    assert resumed == ["chunk 0 resumed after 4 items"]


def test_a_parallel_run_is_cancelled_in_every_chunk(
    runs_host: Celery, runs_worker: WorkerProcess, ledger: redis.Redis
) -> None:
    run_id = f"pc-{uuid.uuid4().hex[:10]}"
    handle = execute_bot.using(runs_host).delay(
        "test.echo",
        7,
        BotParameters(input=rows(60), options={"delay": 0.1}, parallelism=2, run_id=run_id),
    )
    wait_for(lambda: len(processed(ledger, run_id)) >= 4)
    cancel_run(runs_host, run_id)
    result = handle.get(timeout=60)
    assert result.status is RunStatus.CANCELLED
    done = processed(ledger, run_id)
    assert 4 <= len(done) < 60
    assert result.counts.succeeded == len(done)
