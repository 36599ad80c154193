"""A run's event stream on a real Redis: encoding, replay, ``after``, following and trimming."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery
from redis.typing import EncodableT, FieldT

from crawjud_tasks._redis_server import free_port
from crawjud_tasks._state import app_state
from crawjud_tasks.bots._events import (
    EventKind,
    RunEvent,
    decode_event,
    encode_event,
    events_key,
    format_event,
    run_events,
)
from crawjud_tasks.bots.contracts import RunCounts, RunStatus
from crawjud_tasks.errors import (
    BrokerUnavailableError,
    CrawjudTasksError,
    DispatchError,
    PayloadError,
    ResultTimeoutError,
)
from crawjud_tasks.testing import RedisServer, settings_for

MakeApp = Callable[..., Celery]
RUN = "exec-1842"
#: 2026-11-03 12:03:04.250 UTC
T0 = 1793707384.25


def _xadd(fields: Mapping[str, str]) -> dict[FieldT, EncodableT]:
    """The fields as redis-py's ``xadd`` types them."""
    return dict(fields.items())


def _bytes(fields: Mapping[str, str]) -> dict[bytes, bytes]:
    """The fields as Redis answers them."""
    return {name.encode(): value.encode() for name, value in fields.items()}


@pytest.fixture
def client(crawjud_app: Celery) -> redis.Redis:
    """The library's own client for the app (the events live beside its other keys)."""
    return app_state(crawjud_app).redis


class Writer:
    """Writes events to a run's stream the way the runner does."""

    def __init__(self, app: Celery, client: redis.Redis, run_id: str = RUN) -> None:
        self.key = events_key(app, run_id)
        self.client = client
        self.ids: list[str] = []

    def write(
        self, kind: EventKind, *, maxlen: int = 10_000, approximate: bool = True, **fields: Any
    ) -> str:
        entry_id: Any = self.client.xadd(
            self.key,
            _xadd(encode_event(kind, time=fields.pop("time", time.time()), **fields)),
            maxlen=maxlen,
            approximate=approximate,
        )
        self.ids.append(entry_id.decode())
        return str(self.ids[-1])

    def items(self, count: int) -> None:
        """``count`` item events in one pipeline, rows from 2, messages ``item <row>``."""
        pipe = self.client.pipeline(transaction=False)  # pyright: ignore[reportUnknownMemberType]  (redis-py leaves shard_hint unannotated)
        for index in range(count):
            encoded = encode_event(
                "item",
                time=T0 + index,
                level="success",
                message=f"item {index + 2}",
                row=index + 2,
                counts=RunCounts(total=count, succeeded=index + 1),
            )
            pipe.xadd(self.key, _xadd(encoded))
        self.ids.extend(entry_id.decode() for entry_id in pipe.execute())


@pytest.fixture
def writer(crawjud_app: Celery, client: redis.Redis) -> Writer:
    return Writer(crawjud_app, client)


def _all_kinds() -> list[tuple[EventKind, dict[str, Any]]]:
    return [
        (
            "started",
            {
                "counts": RunCounts(total=10),
                "data": {"bot": "projudi.capa", "user_id": 7, "total": 10, "resumed_at": 0},
            },
        ),
        ("log", {"level": "warning", "message": "a slow page: 12 s", "row": 4}),
        ("log", {"level": "info", "message": "logged in as ana"}),
        (
            "item",
            {
                "level": "error",
                "message": "processo não encontrado, 'aspas' \"duplas\", vírgula, 1,2",
                "row": 17,
                "counts": RunCounts(total=10, succeeded=3, failed=1, skipped=2),
            },
        ),
        ("item", {"level": "info", "row": 18, "counts": RunCounts(total=10, skipped=3)}),
        ("progress", {"counts": RunCounts(total=10, succeeded=5, failed=1)}),
        (
            "finished",
            {
                "counts": RunCounts(total=10, succeeded=8, failed=2),
                "status": RunStatus.COMPLETED_WITH_ERRORS,
                "data": {"report": "/srv/reports/exec-1842.xlsx", "error": None},
            },
        ),
    ]


# -- encoding --


@pytest.mark.parametrize(("kind", "fields"), _all_kinds())
def test_encode_decode_round_trip(kind: EventKind, fields: dict[str, Any]) -> None:
    encoded = encode_event(kind, time=T0, **fields)
    assert all(isinstance(v, str) for v in encoded.values())
    event = decode_event(RUN, b"1793707384250-3", _bytes(encoded))
    assert event == RunEvent(
        id="1793707384250-3",
        run_id=RUN,
        kind=kind,
        time=dt.datetime(2026, 11, 3, 12, 3, 4, 250000, tzinfo=dt.timezone.utc),
        **fields,
    )
    assert event.time.utcoffset() == dt.timedelta(0)


def test_encoded_events_are_compact() -> None:
    assert encode_event("progress", time=T0, counts=RunCounts(10, 5, 1, 0)) == {
        "k": "progress",
        "t": "1793707384.250000",
        "c": "10,5,1,0",
    }
    encoded = encode_event(
        "finished",
        time=T0,
        status=RunStatus.FAILED,
        data={"error": "login refusé", "report": None},
    )
    assert encoded == {
        "k": "finished",
        "t": "1793707384.250000",
        "s": "failed",
        "d": '{"error":"login refusé","report":null}',
    }
    # Empty data is not written; a str entry id is taken as it is.
    assert "d" not in encode_event("log", time=T0, message="x", data={})
    assert decode_event(RUN, "1-0", _bytes(encode_event("log", time=T0))).id == "1-0"


def test_data_that_json_cannot_hold_is_written_as_text() -> None:
    when = dt.datetime(2026, 11, 3, tzinfo=dt.timezone.utc)
    encoded = encode_event("started", time=T0, data={"at": when, "path": Path("/srv/x.csv")})
    event = decode_event(RUN, b"1-0", _bytes(encoded))
    assert event.data == {"at": str(when), "path": "/srv/x.csv"}


def test_encode_refuses_an_unknown_kind() -> None:
    stopped: Any = "stopped"  # what an untyped caller may pass
    with pytest.raises(DispatchError, match=r"kind must be one of .*got 'stopped'"):
        encode_event(stopped, time=T0)


@pytest.mark.parametrize(
    "fields",
    [
        {b"t": b"1.0"},
        {b"k": b"exploded", b"t": b"1.0"},
        {b"k": b"log"},
        {b"k": b"log", b"t": b"noon"},
        {b"k": b"log", b"t": b"1.0", b"l": b"loud"},
        {b"k": b"item", b"t": b"1.0", b"c": b"1,2"},
        {b"k": b"item", b"t": b"1.0", b"c": b"1,2,3,4,5"},
        {b"k": b"item", b"t": b"1.0", b"r": b"x"},
        {b"k": b"finished", b"t": b"1.0", b"s": b"exploded"},
        {b"k": b"started", b"t": b"1.0", b"d": b"[1, 2]"},
        {b"k": b"started", b"t": b"1.0", b"d": b"{oops"},
    ],
)
def test_decode_refuses_what_is_not_a_run_event(fields: dict[bytes, bytes]) -> None:
    with pytest.raises(PayloadError, match=r"^entry 5-0 of run 'exec-1842' is not a run event \("):
        decode_event(RUN, b"5-0", fields)


def test_format_event_renders_one_line() -> None:
    def line(kind: EventKind, **fields: Any) -> str:
        return str(decode_event(RUN, b"1-0", _bytes(encode_event(kind, time=T0, **fields))))

    assert line(
        "item",
        level="success",
        message="done",
        row=17,
        counts=RunCounts(total=10, succeeded=3, failed=1),
    ) == ("12:03:04 [row 17] success: done (3/10 ok, 1 failed, 6 left)")
    assert line("item", level="info", message="already filed", row=5) == (
        "12:03:04 [row 5] skipped: already filed"
    )
    assert line("log", level="warning", message="slow page") == "12:03:04 warning: slow page"
    assert line(
        "started",
        counts=RunCounts(total=10, succeeded=4),
        data={"bot": "projudi.capa", "user_id": 7, "resumed_at": 4},
    ) == (
        "12:03:04 started projudi.capa for user 7 resuming after 4 items "
        "(4/10 ok, 0 failed, 6 left)"
    )
    assert line("progress", counts=RunCounts(total=3, succeeded=1, skipped=1)) == (
        "12:03:04 progress (1/3 ok, 0 failed, 1 skipped, 1 left)"
    )
    assert line(
        "finished",
        status=RunStatus.FAILED,
        counts=RunCounts(total=3, failed=3),
        data={"error": "login refused", "report": "/r/x.xlsx"},
    ) == (
        "12:03:04 finished failed (0/3 ok, 3 failed, 0 left) error: login refused report: /r/x.xlsx"
    )
    event = decode_event(RUN, b"1-0", _bytes(encode_event("log", time=T0, message="x")))
    three_hours_behind = dt.timezone(dt.timedelta(hours=-3))
    assert format_event(event, tz=three_hours_behind) == "09:03:04 log: x"


# -- reading --


def test_events_key_is_under_the_namespace(
    crawjud_app: Celery, crawjud_redis: RedisServer, crawjud_data_dir: Path, make_app: MakeApp
) -> None:
    assert events_key(crawjud_app, RUN) == f"crawjud:run:{RUN}:events"
    acme = make_app(settings_for(crawjud_redis, crawjud_data_dir, namespace="acme"))
    assert events_key(acme, "r1") == "acme:run:r1:events"


def test_a_run_without_events_replays_nothing(crawjud_app: Celery) -> None:
    assert list(run_events(crawjud_app, "never-started")) == []


def test_replay_yields_every_event_in_order(crawjud_app: Celery, writer: Writer) -> None:
    for kind, fields in _all_kinds():
        writer.write(kind, **fields)
    events = list(run_events(crawjud_app, RUN))
    assert [e.id for e in events] == writer.ids
    assert [(e.kind, e.level, e.message, e.row, e.counts, e.status) for e in events] == [
        (
            kind,
            fields.get("level"),
            fields.get("message"),
            fields.get("row"),
            fields.get("counts"),
            fields.get("status"),
        )
        for kind, fields in _all_kinds()
    ]
    assert {e.run_id for e in events} == {RUN}
    # Other runs' streams are apart.
    assert list(run_events(crawjud_app, "another-run")) == []


def test_replay_reads_past_a_batch(crawjud_app: Celery, writer: Writer) -> None:
    writer.items(1201)  # three batches of 500
    events = list(run_events(crawjud_app, RUN))
    assert [e.id for e in events] == writer.ids
    assert [e.row for e in events] == list(range(2, 1203))
    assert events[-1].counts == RunCounts(total=1201, succeeded=1201)


def test_after_starts_after_an_entry(crawjud_app: Celery, writer: Writer) -> None:
    writer.items(10)
    events = list(run_events(crawjud_app, RUN, after=writer.ids[3]))
    assert [e.id for e in events] == writer.ids[4:]
    assert list(run_events(crawjud_app, RUN, after=writer.ids[-1])) == []
    assert [e.id for e in run_events(crawjud_app, RUN, after="0")] == writer.ids


def test_a_trimmed_stream_keeps_its_newest_events(crawjud_app: Celery, writer: Writer) -> None:
    for index in range(30):
        writer.write("log", message=f"line {index}", maxlen=10, approximate=False)
    events = list(run_events(crawjud_app, RUN))
    assert [e.message for e in events] == [f"line {index}" for index in range(20, 30)]
    assert [e.id for e in events] == writer.ids[-10:]


def test_an_approximately_trimmed_stream_keeps_a_suffix(
    crawjud_app: Celery, writer: Writer
) -> None:
    for index in range(1000):
        writer.write("log", message=f"line {index}", maxlen=50)
    ids = [e.id for e in run_events(crawjud_app, RUN)]
    assert 50 <= len(ids) < 1000
    assert ids == writer.ids[-len(ids) :]


def test_follow_reads_events_as_they_are_written_and_stops_at_finished(
    crawjud_app: Celery, client: redis.Redis
) -> None:
    writer = Writer(crawjud_app, client)
    written = threading.Event()

    def run() -> None:
        writer.write("started", counts=RunCounts(total=5), data={"bot": "b", "user_id": 1})
        for index in range(5):
            time.sleep(0.05)
            writer.write(
                "item",
                level="success",
                row=index + 2,
                counts=RunCounts(total=5, succeeded=index + 1),
            )
        time.sleep(0.05)
        writer.write("finished", status=RunStatus.COMPLETED, counts=RunCounts(5, 5))
        # Written after the end: a follower never waits for it.
        writer.write("log", level="info", message="after the end")
        written.set()

    thread = threading.Thread(target=run)
    thread.start()
    try:
        events = list(run_events(crawjud_app, RUN, follow=True, block=0.05, timeout=60))
    finally:
        thread.join()
    assert written.is_set()
    assert [e.kind for e in events] == ["started", *["item"] * 5, "finished"]
    assert [e.id for e in events] == writer.ids[:-1]
    assert [e.row for e in events[1:-1]] == [2, 3, 4, 5, 6]
    assert events[-1].status is RunStatus.COMPLETED


def test_follow_of_a_finished_run_replays_it_and_returns(
    crawjud_app: Celery, writer: Writer
) -> None:
    writer.items(3)
    writer.write("finished", status=RunStatus.COMPLETED)
    events = list(run_events(crawjud_app, RUN, follow=True, timeout=60))
    assert [e.id for e in events] == writer.ids
    # From after an entry too.
    events = list(run_events(crawjud_app, RUN, follow=True, after=writer.ids[1], timeout=60))
    assert [e.id for e in events] == writer.ids[2:]


def test_follow_times_out_when_nothing_is_written(crawjud_app: Celery) -> None:
    with pytest.raises(ResultTimeoutError, match=r"run 'quiet' did not finish within 0\.3 s"):
        list(run_events(crawjud_app, "quiet", follow=True, block=0.1, timeout=0.3))


def test_follow_times_out_after_yielding_what_there_is(crawjud_app: Celery, writer: Writer) -> None:
    writer.items(3)
    received: list[RunEvent] = []
    with pytest.raises(ResultTimeoutError) as caught:  # noqa: PT012  (events first, then the error)
        for event in run_events(crawjud_app, RUN, follow=True, timeout=0.3):
            received.append(event)
    assert [e.id for e in received] == writer.ids
    assert f"follow again with after={writer.ids[-1]!r}" in str(caught.value)
    assert isinstance(caught.value, TimeoutError)


def test_a_long_block_never_looks_like_an_unreachable_redis(
    crawjud_redis: RedisServer, crawjud_data_dir: Path, make_app: MakeApp
) -> None:
    # A 0.5 s connection timeout gives the client a 0.2 s socket timeout: a 2 s XREAD BLOCK
    # would time out the socket, so each read waits less than that.
    app = make_app(settings_for(crawjud_redis, crawjud_data_dir, broker_connection_timeout=0.5))
    with pytest.raises(ResultTimeoutError):
        list(run_events(app, RUN, follow=True, block=2.0, timeout=1.0))


def test_an_unreachable_redis_raises_broker_unavailable(
    crawjud_data_dir: Path, make_app: MakeApp
) -> None:
    url = f"redis://127.0.0.1:{free_port()}"
    app = make_app(
        {
            "broker_url": f"{url}/0",
            "result_backend": f"{url}/1",
            "broker_connection_timeout": 0.5,
            "data_dir": str(crawjud_data_dir),
        }
    )
    with pytest.raises(BrokerUnavailableError, match="Connection refused"):
        list(run_events(app, RUN))


def test_a_key_that_is_not_a_stream_is_a_library_error(
    crawjud_app: Celery, client: redis.Redis
) -> None:
    client.set(events_key(crawjud_app, RUN), "x")
    with pytest.raises(CrawjudTasksError, match="refused a command: ResponseError: WRONGTYPE") as c:
        list(run_events(crawjud_app, RUN))
    assert type(c.value) is CrawjudTasksError


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"run_id": ""}, "run_id must be a non-empty string, got ''"),
        ({"run_id": 42}, "run_id must be a non-empty string, got 42"),
        ({"after": "latest"}, "after must be a stream entry id"),
        ({"after": "1-2-3"}, "after must be a stream entry id"),
        ({"block": 0}, r"block must be a number of seconds > 0, got 0"),
        ({"block": -1.0}, "block must be a number of seconds > 0"),
        ({"block": float("nan")}, "block must be a number of seconds > 0"),
        ({"block": True}, "block must be a number of seconds > 0"),
        ({"block": None}, "block must be a number of seconds > 0, got None"),
        ({"timeout": 0}, r"timeout must be a number of seconds > 0 \(or None\), got 0"),
        ({"timeout": "5"}, "timeout must be a number of seconds > 0"),
    ],
)
def test_invalid_arguments_are_refused_at_the_call(
    crawjud_app: Celery, arguments: dict[str, Any], message: str
) -> None:
    call: dict[str, Any] = {"run_id": RUN, **arguments}
    with pytest.raises(DispatchError, match=message) as caught:
        run_events(crawjud_app, **call)  # no iteration: refused before anything is read
    assert "\n" not in str(caught.value)
