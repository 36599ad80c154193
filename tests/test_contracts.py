"""Typed contracts end to end: a host app without the implementations, a worker process with them.

The host imports ``tests.examples.contracts`` only; the worker subprocess loads
``tests.examples.worker:app``, which implements them. Both run on a real Redis.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
import redis
from celery import Celery

from crawjud_tasks import Settings, chord, group, map_chunks, pipeline
from crawjud_tasks.errors import (
    BrokerUnavailableError,
    ContractError,
    PayloadError,
    ResultTimeoutError,
    TaskFailedError,
)
from crawjud_tasks.testing import RedisServer, WorkerProcess, wait_for
from tests.examples import contracts as c
from tests.helpers import entries


def test_host_app_has_no_implementation(host: Celery) -> None:
    assert "ex.examples.add" not in host.tasks
    with pytest.raises(ContractError, match="no implementation in this process"):
        c.add(1, 2)


def test_delay_returns_the_declared_type(host: Celery, worker: WorkerProcess) -> None:
    result = c.add.using(host).delay(2, b=3)
    assert result.get(timeout=20) == 5
    assert result.successful()
    assert result.state == "SUCCESS"


def test_dataclass_argument_and_result_are_rebuilt(host: Celery, worker: WorkerProcess) -> None:
    lawsuit = c.Lawsuit(number="12345", year=2024, court="TJSP")
    checked = c.check.using(host).delay(lawsuit).get(timeout=20)
    assert checked == c.Checked(
        number="12345",
        status=c.Status.VALID,
        checked_at=dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc),
        notes=[],
    )
    strict = c.check.using(host).s(lawsuit, strict=True).apply_async(priority=5)
    assert strict.get(timeout=20).status is c.Status.INVALID


def test_optional_results(host: Celery, worker: WorkerProcess) -> None:
    assert c.when.using(host).delay(None).get(timeout=20) is None
    later = c.when.using(host).delay(31).get(timeout=20)
    assert later == dt.datetime(2026, 2, 1, tzinfo=dt.timezone.utc)


def test_partial_signature_receives_its_first_argument(host: Celery, worker: WorkerProcess) -> None:
    partial = c.add.using(host).s(b=10)
    assert partial.delay(5).get(timeout=20) == 15
    assert partial.apply_async(7, countdown=0.2).get(timeout=20) == 17


def test_pipeline_and_chain_spellings(host: Celery, worker: WorkerProcess) -> None:
    prepare, check_all, summarize = (
        c.prepare.using(host),
        c.check_all.using(host),
        c.summarize.using(host),
    )
    flow = pipeline(prepare.s(["1", "2", "x3"], 2020), check_all.s(), summarize.s())
    assert flow.apply_async().get(timeout=30) == {"total": 3, "valid": 2}
    add = c.add.using(host)
    assert (add.s(1, 2) | add.s(b=10) | add.s(b=100)).delay().get(timeout=30) == 113
    assert add.s(1, 1).then(add.s()).delay().get(timeout=30) == 2
    # An immutable step ignores the previous result.
    assert (add.s(1, 1) | add.si(5, 5)).delay().get(timeout=30) == 10


def test_group_gives_a_list_in_order(host: Celery, worker: WorkerProcess) -> None:
    add = c.add.using(host)
    assert group([add.s(i, i) for i in range(6)]).delay().get(timeout=30) == [0, 2, 4, 6, 8, 10]
    lawsuits = [c.Lawsuit(number=str(n), year=2020) for n in (1, 2)]
    checked = group([c.check.using(host).s(each) for each in lawsuits]).delay().get(timeout=30)
    assert [each.number for each in checked] == ["1", "2"]
    assert all(isinstance(each, c.Checked) for each in checked)


def test_group_in_the_middle_of_a_chain(host: Celery, worker: WorkerProcess) -> None:
    add = c.add.using(host)
    flow = add.s(1, 1) | group([add.s(b=10), add.s(b=20)]) | c.total.using(host).s()
    assert flow.delay().get(timeout=30) == 34


def test_chord_passes_the_header_results_to_the_body(
    host: Celery, worker: WorkerProcess, log: redis.Redis
) -> None:
    lawsuits = [c.Lawsuit(number=n, year=2021) for n in ("1", "22", "bad")]
    header = [c.check.using(host).s(each) for each in lawsuits]
    assert chord(header, c.summarize.using(host).s()).delay().get(timeout=30) == {
        "total": 3,
        "valid": 2,
    }
    assert entries(log) == ["summarize"]


def test_chord_header_failure_skips_the_body_and_calls_the_error_callback_once(
    host: Celery, worker: WorkerProcess, log: redis.Redis
) -> None:
    add = c.add.using(host)
    header = [add.s(1, 1), c.fail.using(host).s("boom"), add.s(2, 2), c.fail.using(host).s("bam")]
    flow = chord(header, c.total.using(host).s(), on_error=c.record.using(host).s())
    result = flow.delay()
    with pytest.raises(TaskFailedError) as failure:
        result.get(timeout=30)
    assert "boom" in str(failure.value) or "bam" in str(failure.value)
    wait_for(lambda: entries(log), timeout=20)
    # Later tasks on the same worker prove nothing else is still on its way.
    assert add.delay(1, 1).get(timeout=20) == 2
    assert add.delay(2, 2).get(timeout=20) == 4
    assert entries(log) == [result.id]  # the callback ran once, with the body's id; total never ran


def test_apply_async_on_error_sends_the_error_callback_with_the_failed_task_id(
    host: Celery, worker: WorkerProcess, log: redis.Redis
) -> None:
    failing = c.fail.using(host).s("court site said no")
    result = failing.apply_async(on_error=c.record.using(host).s())
    with pytest.raises(TaskFailedError):
        result.get(timeout=30)
    wait_for(lambda: entries(log), timeout=20)
    assert entries(log) == [result.id]
    # A task that succeeds sends no error callback.
    assert (
        c.add.using(host).s(2, 3).apply_async(on_error=c.record.using(host).s()).get(timeout=20)
        == 5
    )
    assert c.add.using(host).delay(1, 1).get(timeout=20) == 2
    assert entries(log) == [result.id]


def test_on_error_must_be_a_partial_signature(host: Celery) -> None:
    complete: Any = c.record.using(host).s("no")
    with pytest.raises(ContractError, match="on_error is a signature missing its first argument"):
        c.add.using(host).s(1, 2).apply_async(on_error=complete)


def test_map_chunks_flattens_in_order(host: Celery, worker: WorkerProcess) -> None:
    add = c.add.using(host)
    flow = map_chunks(add.s(b=1000), range(25), 10)
    assert flow.delay().get(timeout=30) == [1000 + n for n in range(25)]
    # Arguments bound in the partial signature follow each item.
    prepared = map_chunks(c.prepare.using(host).s(2019), [["1"], ["2", "3"]], 1).delay()
    assert prepared.get(timeout=30) == [
        [c.Lawsuit(number="1", year=2019)],
        [c.Lawsuit(number="2", year=2019), c.Lawsuit(number="3", year=2019)],
    ]
    # A chunked map feeds the next step like any other list-producing step.
    assert flow.then(c.total.using(host).s()).delay().get(timeout=30) == sum(
        1000 + n for n in range(25)
    )
    # A contract that takes one argument maps as it is, like its contract.s().
    assert map_chunks(add, [1, 2, 3], 2).delay().get(timeout=30) == [1, 2, 3]


def test_map_chunks_refuses_a_contract_that_needs_more_than_the_item() -> None:
    with pytest.raises(ContractError, match=r"one argument of examples\.prepare"):
        map_chunks(c.prepare, [["1"]], 2)  # type: ignore[arg-type]  # the point: it takes two


def test_contract_returning_none_stores_no_result(
    host: Celery, worker: WorkerProcess, log: redis.Redis, crawjud_redis_server: RedisServer
) -> None:
    result = c.record.using(host).delay("fire-and-forget")
    wait_for(lambda: "fire-and-forget" in entries(log), timeout=20)
    assert "fire-and-forget" in entries(log)
    backend = crawjud_redis_server.client(1)
    try:
        assert backend.keys(f"*{result.id}*") == []
    finally:
        backend.close()
    with pytest.raises(ContractError, match="returns None"):
        result.get(timeout=1)


@pytest.mark.parametrize(
    ("args", "kwargs", "expected"),
    [
        (["three"], {}, r"argument 'a' does not fit the contract: Expected `int`, got `str`"),
        ([], {"b": 1}, r"missing a required argument: 'a'"),
        ([1], {"c": 2}, r"got an unexpected keyword argument 'c'"),
        ([1, 2, 3], {}, r"too many positional arguments"),
    ],
)
def test_bad_message_fails_terminally_with_payload_error(
    host: Celery,
    worker: WorkerProcess,
    args: list[object],
    kwargs: dict[str, object],
    expected: str,
) -> None:
    # Hand-crafted with the raw Celery API: nothing on the host checked these arguments.
    raw = host.send_task("ex.examples.add", args=args, kwargs=kwargs)
    with pytest.raises(PayloadError, match=expected):
        raw.get(timeout=20, disable_sync_subtasks=False)
    assert raw.state == "FAILURE"
    assert c.add.using(host).delay(1, 2).get(timeout=20) == 3  # the worker keeps consuming


def test_nested_field_errors_name_the_path(host: Celery, worker: WorkerProcess) -> None:
    raw = host.send_task("ex.examples.check", args=[{"number": "1", "year": "2020"}])
    with pytest.raises(PayloadError, match=r"Expected `int`, got `str` \(at `lawsuit.year`\)"):
        raw.get(timeout=20, disable_sync_subtasks=False)


def test_other_worker_errors_arrive_as_task_failed_error(
    host: Celery, worker: WorkerProcess
) -> None:
    result = c.fail.using(host).delay("court site said no")
    with pytest.raises(TaskFailedError) as failure:
        result.get(timeout=20)
    assert failure.value.remote_type == "ValueError"
    assert failure.value.remote_message == "court site said no"
    assert result.failed()


def test_waiting_too_long_is_a_result_timeout(host: Celery) -> None:
    # No worker consumes this queue, so the result cannot arrive.
    result = c.add.using(host).s(1, 2).apply_async(queue="ex.nobody", expires=5)
    with pytest.raises(ResultTimeoutError, match=r"within 0\.3 s"):
        result.get(timeout=0.3)
    result.revoke()


def test_result_handle_from_an_id(host: Celery, worker: WorkerProcess) -> None:
    first = c.when.using(host).delay(1)
    again = c.when.using(host).result(first.id)
    assert again.get(timeout=20) == dt.datetime(2026, 1, 2, tzinfo=dt.timezone.utc)


def test_worker_start_reports_contracts_without_implementation(
    host: Celery, worker: WorkerProcess
) -> None:
    # The worker imported tests.examples.contracts, where `unimplemented` has no implementation
    # and routes to the default queue, which the worker consumes.
    output = worker.output()
    assert "ex.examples.unimplemented is routed to queue ex, which this worker consumes" in output
    assert "ex.examples.add is routed" not in output


def test_group_results_stored_before_anyone_waits_are_found(
    host: Celery, worker: WorkerProcess, crawjud_redis_server: RedisServer
) -> None:
    # A group of plain calls is published in bulk and subscribes to its results only when
    # they are awaited: results already stored by then must still be found.
    add = c.add.using(host)
    result = group([add.s(i, 1) for i in range(40)]).apply_async(priority=3, task_id="grp-1")
    assert result.id == "grp-1"
    members = [member.id for member in result.raw.results]  # type: ignore[union-attr]  # a group's raw result is a GroupResult
    backend = crawjud_redis_server.client(1)
    try:
        keys = [f"ex:celery-task-meta-{member}" for member in members]
        wait_for(lambda: backend.exists(*keys) == len(keys), timeout=20)
        assert backend.exists(*keys) == len(keys)
    finally:
        backend.close()
    assert result.get(timeout=20) == [i + 1 for i in range(40)]


def test_a_chain_ending_in_a_none_contract_can_be_awaited(
    host: Celery, worker: WorkerProcess, log: redis.Redis
) -> None:
    # Alone, a contract returning None stores no result; as the last step of a chain (or in a
    # group) its null result is stored, so the workflow can be waited for.
    flow = c.add.using(host).s(1, 1) | c.record.using(host).si("chained")
    assert flow.delay().get(timeout=20) is None
    assert group([c.record.using(host).s("g1"), c.record.using(host).s("g2")]).delay().get(
        timeout=20
    ) == [None, None]
    assert sorted(entries(log)) == ["chained", "g1", "g2"]


def test_map_chunks_runs_at_least_once_contracts_item_by_item(
    host: Celery, worker: WorkerProcess, log: redis.Redis
) -> None:
    # Each item runs in-process inside its chunk's message: the chunk is what is delivered.
    flow = map_chunks(c.effect.using(host).s(), ["m1", "m2", "m3"], 2)
    assert flow.delay().get(timeout=30) == ["m1", "m2", "m3"]
    ended = sorted(entry for entry in entries(log) if entry.endswith(":end"))
    assert ended == ["m1:end", "m2:end", "m3:end"]


def test_an_unreachable_result_backend_is_broker_unavailable(
    host_settings: Settings, make_app: Callable[..., Celery]
) -> None:
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = dataclasses.replace(
        host_settings,
        result_backend=f"redis://127.0.0.1:{port}/1",
        broker_connection_timeout=1.0,
    )
    app = make_app(settings)
    handle = c.add.using(app).result("no-such-task")
    with pytest.raises(BrokerUnavailableError, match="the result backend did not answer"):
        handle.get(timeout=5)
    with pytest.raises(BrokerUnavailableError):
        handle.ready()
