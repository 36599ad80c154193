"""Schedules against a real Redis: specs, the store, and the scheduler with an injected clock.

The scheduler runs in this process with a frozen clock (so DST and catch-up are exact); what it
publishes lands in the real broker queue, which the tests read back.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterator

import pytest
from celery import Celery

from crawjud_tasks import schedules
from crawjud_tasks._settings import Settings
from crawjud_tasks._state import app_state
from crawjud_tasks.errors import ScheduleError, UnknownScheduleError
from crawjud_tasks.schedules import Schedule, ScheduleScheduler
from crawjud_tasks.schedules._store import ScheduleStore
from crawjud_tasks.schedules._timing import from_ms, to_ms
from crawjud_tasks.testing import RedisServer, settings_for
from tests.examples.schedules_app import slow, tick

pytestmark = pytest.mark.slow  # a real Redis server

UTC = dt.timezone.utc


class Clock:
    """A frozen clock the test moves by hand (milliseconds)."""

    def __init__(self, start: dt.datetime) -> None:
        self.ms = to_ms(start)

    def __call__(self) -> int:
        return self.ms

    def set(self, moment: dt.datetime) -> None:
        self.ms = to_ms(moment)

    def advance(self, seconds: float) -> None:
        self.ms += round(seconds * 1000)


@pytest.fixture
def app(crawjud_redis: RedisServer, crawjud_data_dir: object) -> Iterator[Celery]:
    from crawjud_tasks import create_app
    from crawjud_tasks._app import close_app

    settings: Settings = settings_for(crawjud_redis, crawjud_data_dir, namespace="cj")  # type: ignore[arg-type]
    application = create_app(settings)
    yield application
    close_app(application)


def _add(app: Celery, clock: Clock, schedule: Schedule) -> None:
    """``schedules.add``, with the frozen clock deciding the first fire."""
    ScheduleStore(app, clock).put(schedule.stored(), mode="add")


def _scheduler(app: Celery, clock: Clock) -> ScheduleScheduler:
    return ScheduleScheduler(app, clock=clock)


def _queued(app: Celery) -> list[dict[str, object]]:
    """The messages waiting in the default queue (task name, id, args, headers)."""
    broker = app_state(app).link.broker
    assert broker is not None
    out = []
    for raw in broker.lrange("cj", 0, -1):
        message = json.loads(raw)
        headers = message["headers"]
        out.append({"id": headers["id"], "task": headers["task"], "body": message["body"]})
    return out


def test_a_schedule_is_checked_before_anything_is_stored() -> None:
    with pytest.raises(ScheduleError, match="cron"):
        Schedule(id="x", task=tick.s("a"), cron="61 * * * *")
    with pytest.raises(ScheduleError, match="timezone"):
        Schedule(id="x", task=tick.s("a"), cron="0 6 * * *", timezone="Mars/Olympus")
    with pytest.raises(ScheduleError, match="at least 1 second"):
        Schedule(id="x", task=tick.s("a"), every="500ms")
    with pytest.raises(ScheduleError, match="exactly one"):
        Schedule(id="x", task=tick.s("a"))
    with pytest.raises(ScheduleError, match="complete signature"):
        Schedule(id="x", task=tick, every=5)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    with pytest.raises(ScheduleError, match="schedule id"):
        Schedule(id="../x", task=tick.s("a"), every=5)
    assert Schedule(id="ok", task=tick.s("a"), every="5m").stored().every == 300.0


def test_add_describe_pause_resume_remove(app: Celery) -> None:
    clock = Clock(dt.datetime(2026, 1, 5, 12, 0, 0, tzinfo=UTC))
    schedule = Schedule(id="nightly", task=tick.s("n"), cron="0 6 * * *", timezone="UTC")
    schedules.add(app, schedule)
    with pytest.raises(ScheduleError, match="exists"):
        schedules.add(app, schedule)
    info = schedules.describe(app, "nightly")
    assert info.next_fires[0].hour == 6 and not info.paused
    schedules.pause(app, "nightly", "holiday")
    info = schedules.describe(app, "nightly")
    assert info.paused and info.pause_note == "holiday" and info.next_fires == []
    schedules.resume(app, "nightly")
    assert not schedules.describe(app, "nightly").paused
    schedules.remove(app, "nightly")
    with pytest.raises(UnknownScheduleError):
        schedules.describe(app, "nightly")
    del clock


def test_two_schedulers_fire_each_tick_once(app: Celery) -> None:
    clock = Clock(dt.datetime(2026, 1, 5, 12, 0, 0, tzinfo=UTC))
    _add(app, clock, Schedule(id="every", task=tick.s("e"), every=1, overlap="allow"))
    first, second = _scheduler(app, clock), _scheduler(app, clock)
    for _ in range(10):
        clock.advance(1)
        first.tick()
        second.tick()
    assert first.leading and not second.leading
    ids = [m["id"] for m in _queued(app)]
    assert len(ids) == 10 and len(set(ids)) == 10
    first.close()
    second.close()


def test_a_beat_down_across_five_fires_runs_one_catch_up(app: Celery) -> None:
    clock = Clock(dt.datetime(2026, 1, 5, 12, 0, 0, tzinfo=UTC))
    _add(
        app,
        clock,
        Schedule(id="five", task=tick.s("f"), every=10, catchup_window=60, overlap="allow"),
    )
    beat = _scheduler(app, clock)
    clock.advance(10)
    beat.tick()
    assert len(_queued(app)) == 1
    clock.advance(55)  # five fire times pass with no tick
    beat.tick()
    info = schedules.describe(app, "five")
    assert len(_queued(app)) == 2
    assert info.counters["fired"] == 2 and info.counters["missed"] == 4
    # An hourly schedule whose beat was down 2.5 hours: its latest fire is 30 minutes old,
    # beyond its one-minute window: nothing runs, both fires are counted missed.
    hourly = Schedule(id="hourly", task=tick.s("h"), every="1h", catchup_window=60)
    _add(app, clock, hourly)
    clock.advance(2.5 * 3600)
    beat.tick()
    info = schedules.describe(app, "hourly")
    assert info.counters["fired"] == 0 and info.counters["missed"] == 2
    assert info.next_fires[0] > from_ms(clock())
    beat.close()


def test_dst_gap_fires_after_the_gap_and_fold_fires_once(app: Celery) -> None:
    # New York: 2026-03-08 02:00 -> 03:00 (gap); 2026-11-01 02:00 -> 01:00 (fold).
    clock = Clock(dt.datetime(2026, 3, 7, 12, 0, tzinfo=UTC))
    gap = Schedule(
        id="gap", task=tick.s("g"), cron="30 2 * * *", timezone="America/New_York", overlap="allow"
    )
    _add(app, clock, gap)
    beat = _scheduler(app, clock)
    fired: list[dt.datetime] = []
    for _ in range(3 * 24 * 4):  # three days, a tick every 15 minutes
        clock.advance(900)
        before = len(_queued(app))
        beat.tick()
        if len(_queued(app)) > before:
            fired.append(from_ms(clock()))
    local = [f.astimezone(dt.timezone(dt.timedelta(hours=-4))) for f in fired]
    # 2026-03-07 02:30 EST is before the start; then 03:00 EDT on the 8th (after the gap)...
    assert [(t.day, t.hour, t.minute) for t in local] == [(8, 3, 0), (9, 2, 30), (10, 2, 30)]
    schedules.remove(app, "gap")

    clock.set(dt.datetime(2026, 10, 31, 12, 0, tzinfo=UTC))
    fold = Schedule(
        id="fold", task=tick.s("h"), cron="30 1 * * *", timezone="America/New_York", overlap="allow"
    )
    _add(app, clock, fold)
    fired = []
    for _ in range(2 * 24 * 12):  # two days, a tick every 5 minutes
        clock.advance(300)
        before = len(_queued(app))
        beat.tick()
        if len(_queued(app)) > before:
            fired.append(from_ms(clock()))
    # 01:30 happens twice on 2026-11-01: it fires once, at the first (05:30 UTC).
    assert [f.strftime("%m-%d %H:%M") for f in fired] == ["11-01 05:30", "11-02 06:30"]
    beat.close()


def test_overlap_skip_and_buffer_one(app: Celery) -> None:
    clock = Clock(dt.datetime(2026, 1, 5, 12, 0, 0, tzinfo=UTC))
    _add(app, clock, Schedule(id="skip", task=slow.s("s", 5.0), every=1, overlap="skip"))
    _add(app, clock, Schedule(id="buf", task=slow.s("b", 5.0), every=1, overlap="buffer_one"))
    beat = _scheduler(app, clock)
    for _ in range(4):  # no worker: the first fire of each still "runs"
        clock.advance(1)
        beat.tick()
    skip = schedules.describe(app, "skip").counters
    buf = schedules.describe(app, "buf").counters
    assert skip["fired"] == 1 and skip["skipped"] == 3
    assert buf["fired"] == 1 and buf["skipped"] == 2  # one fire kept waiting
    # The first run ends: the buffered fire goes at the next tick.
    app_state(app).redis.delete("cj:schedules:running:buf")
    clock.advance(0.1)
    beat.tick()
    assert schedules.describe(app, "buf").counters["fired"] == 2
    beat.close()


def test_lock_loss_steps_down_and_a_zombie_cannot_fire(app: Celery) -> None:
    clock = Clock(dt.datetime(2026, 1, 5, 12, 0, 0, tzinfo=UTC))
    _add(app, clock, Schedule(id="z", task=tick.s("z"), every=1, overlap="allow"))
    zombie, other = _scheduler(app, clock), _scheduler(app, clock)
    clock.advance(1)
    zombie.tick()
    assert zombie.leading
    app_state(app).redis.delete("cj:schedules:leader")  # its lock expired while it stalled
    other.tick()
    assert other.leading
    clock.advance(1)
    zombie.tick()  # renews nothing: it steps down, fires nothing
    assert not zombie.leading
    other.tick()
    ids = [m["id"] for m in _queued(app)]
    assert len(ids) == len(set(ids)) == 2
    zombie.close()
    other.close()


def test_sync_restores_and_prunes_declared(app: Celery) -> None:
    declared = [
        Schedule(id="a", task=tick.s("a"), every=60),
        Schedule(id="b", task=tick.s("b"), every=60),
    ]
    report = schedules.sync(app, declared)
    assert report.added == ["a", "b"] and report.restored
    schedules.add(app, Schedule(id="rt", task=tick.s("r"), every=60))
    report = schedules.sync(app, declared[:1], prune=True)
    assert report.removed == ["b"] and report.unchanged == ["a"]
    assert [s.id for s in schedules.list_schedules(app)] == ["a", "rt"]
    app_state(app).redis.flushdb()
    assert schedules.sync(app, declared[:1]).restored


def test_export_import_round_trip_and_bad_input(app: Celery) -> None:
    schedules.add(app, Schedule(id="x", task=tick.s("x"), cron="0 6 * * 1-5", timezone="UTC"))
    text = schedules.export_schedules(app)
    app_state(app).redis.flushdb()
    assert schedules.import_schedules(app, text).added == ["x"]
    with pytest.raises(ScheduleError, match="not a schedules export"):
        schedules.import_schedules(app, "{}")
    bad = json.loads(text)
    bad[0]["kwargs"] = {"nope": 1}
    with pytest.raises(ScheduleError, match=r"sched\.tick"):
        schedules.import_schedules(app, json.dumps(bad))


def test_trigger_runs_now_with_its_own_id(app: Celery) -> None:
    schedules.add(app, Schedule(id="t", task=tick.s("t"), cron="0 6 * * *"))
    task_id = schedules.trigger(app, "t")
    assert [m["id"] for m in _queued(app)] == [task_id]
    assert schedules.describe(app, "t").counters["fired"] == 1


def test_cli_add_list_next_pause_trigger_export_import(
    app: Celery, crawjud_redis: RedisServer, tmp_path: object
) -> None:
    from tests.helpers import run_cli
    from tests.test_schedules_beat import ROOT

    env = {
        **app_settings_env(app),
        "PYTHONPATH": str(ROOT),
    }
    spec = ["--app", "tests.examples.schedules_app:app", "schedules"]
    done = run_cli(
        *spec,
        "add",
        "nightly",
        "--task",
        "sched.tick",
        "--cron",
        "0 6 * * *",
        "--arg",
        '"n"',
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert "added nightly" in done.stdout
    bad = run_cli(
        *spec, "add", "bad", "--task", "sched.tick", "--every", "1s", "--arg", "5", env=env
    )
    assert bad.returncode == 1 and "label" in bad.stderr and len(bad.stderr.splitlines()) == 1
    unknown = run_cli(*spec, "add", "x", "--task", "nope.task", "--every", "1s", env=env)
    assert unknown.returncode == 1 and "no contract named" in unknown.stderr
    assert "nightly" in run_cli(*spec, "list", env=env).stdout
    assert len(run_cli(*spec, "next", "nightly", "-n", "3", env=env).stdout.splitlines()) == 3
    assert run_cli(*spec, "pause", "nightly", "--note", "x", env=env).returncode == 0
    assert schedules.describe(app, "nightly").paused
    assert run_cli(*spec, "resume", "nightly", env=env).returncode == 0
    triggered = run_cli(*spec, "trigger", "nightly", env=env)
    assert [m["id"] for m in _queued(app)] == [triggered.stdout.strip()]
    exported = run_cli(*spec, "export", env=env).stdout
    assert run_cli(*spec, "remove", "nightly", env=env).returncode == 0
    path = tmp_path / "s.json"  # type: ignore[operator]
    path.write_text(exported)
    imported = run_cli(*spec, "import", str(path), env=env)
    assert "added 1" in imported.stdout, imported.stderr


def app_settings_env(app: Celery) -> dict[str, str]:
    from crawjud_tasks._state import app_settings

    return app_settings(app).to_env()


def test_trigger_follows_the_overlap_policy_and_runs_a_paused_schedule(app: Celery) -> None:
    for overlap in ("skip", "buffer_one", "allow"):
        schedules.add(
            app, Schedule(id=overlap, task=tick.s(overlap), cron="0 6 * * *", overlap=overlap)
        )  # type: ignore[arg-type]
    # A fire is (schedule, millisecond): two triggers within one are one fire, so each trigger
    # below waits a little more than a millisecond after the one before.
    first = schedules.trigger(app, "skip")
    assert first is not None
    time.sleep(0.002)
    assert schedules.trigger(app, "skip") is None  # the first still holds its run lease
    assert schedules.describe(app, "skip").counters["skipped"] == 1
    assert schedules.trigger(app, "buffer_one") is not None
    time.sleep(0.002)
    kept = schedules.trigger(app, "buffer_one")
    assert kept is not None and kept not in [m["id"] for m in _queued(app)]  # kept for later
    time.sleep(0.002)
    assert schedules.trigger(app, "buffer_one") is None  # one is kept already
    first_allowed = schedules.trigger(app, "allow")
    time.sleep(0.002)
    assert schedules.trigger(app, "allow") not in (None, first_allowed)
    schedules.pause(app, "allow", "maintenance window")
    time.sleep(0.002)
    assert schedules.trigger(app, "allow") is not None
    info = schedules.describe(app, "allow")
    assert info.paused and info.counters["fired"] == 3


def _claim_and_die(app: Celery, clock: Clock, *, publish: bool) -> str:
    """What a leader does before it is killed: claim the due fire of ``o`` (and publish it)."""
    from crawjud_tasks.schedules._fire import CLAIM, claim_args, new_fire, plan, publish_fires

    dying = _scheduler(app, clock)
    assert dying.lead()
    store = dying.store
    spec = store.get("o")
    next_ms = int(app_state(app).redis.hget("cj:schedules:state:o", "next") or 0)
    steps = plan(spec, next_ms, clock())
    assert steps.fire is not None
    fire = new_fire(
        store, spec, steps.fire, field="next", expected=next_ms, following=steps.following
    )
    assert dying._run_script(CLAIM, [claim_args(store, fire, dying._token)]) == [b"ok"]
    if publish:
        publish_fires(store, [fire])
    app_state(app).redis.delete("cj:schedules:leader")  # SIGKILLed: its lock expires
    return fire.task_id


def test_a_fire_claimed_by_a_killed_leader_is_published_by_the_next(app: Celery) -> None:
    clock = Clock(dt.datetime(2026, 1, 5, 12, 0, 0, tzinfo=UTC))
    _add(app, clock, Schedule(id="o", task=tick.s("o"), every=60))
    clock.advance(60)
    task_id = _claim_and_die(app, clock, publish=False)
    assert _queued(app) == []
    clock.advance(5)  # the next leader's tick
    beat = _scheduler(app, clock)
    beat.tick()
    assert [m["id"] for m in _queued(app)] == [task_id]  # the same message, not lost
    info = schedules.describe(app, "o")
    assert info.counters["fired"] == 1 and info.counters["missed"] == 0
    assert info.next_fires[0] == dt.datetime(2026, 1, 5, 12, 2, tzinfo=UTC)
    beat.tick()
    assert len(_queued(app)) == 1
    beat.close()


def test_a_fire_that_ran_before_its_leader_advanced_it_is_not_sent_again(app: Celery) -> None:
    from crawjud_tasks._delivery._replay import store_result

    clock = Clock(dt.datetime(2026, 1, 5, 12, 0, 0, tzinfo=UTC))
    _add(app, clock, Schedule(id="o", task=tick.s("o"), every=60))
    clock.advance(60)
    task_id = _claim_and_die(app, clock, publish=True)
    store_result(
        app,
        "cj.sched.tick",
        f"schedule:o@{to_ms(dt.datetime(2026, 1, 5, 12, 1, tzinfo=UTC))}",
        None,
    )
    clock.advance(5)
    beat = _scheduler(app, clock)
    beat.tick()
    assert [m["id"] for m in _queued(app)] == [task_id]  # only the dead leader's message
    assert schedules.describe(app, "o").next_fires[0] == dt.datetime(2026, 1, 5, 12, 2, tzinfo=UTC)
    beat.close()


def test_builtins_are_off_until_named_and_refuse_what_is_not_there(
    crawjud_redis: RedisServer, crawjud_data_dir: object
) -> None:
    from crawjud_tasks import create_app
    from crawjud_tasks._app import close_app
    from crawjud_tasks.errors import SettingsError
    from crawjud_tasks.schedules._api import sync_declared

    settings = settings_for(
        crawjud_redis,
        crawjud_data_dir,  # type: ignore[arg-type]
        namespace="cjbi",
        schedules={"builtins": ["health_check", "cache_cleanup"]},
    )
    application = create_app(settings)
    try:
        assert sync_declared(application).added == [
            "builtin.health_check",
            "builtin.cache_cleanup.files",
            "builtin.cache_cleanup.redis",
        ]
        check = schedules.describe(application, "builtin.health_check").schedule
        assert check.task == "maintenance.health_check" and check.every == 300
    finally:
        close_app(application)
    application = create_app(
        settings_for(
            crawjud_redis,
            crawjud_data_dir,  # type: ignore[arg-type]
            namespace="cjbi2",
            timezone="America/Sao_Paulo",
            monitoring={"report_to": ["ops@example.org"]},
            schedules={
                "builtins": ["periodic_report", "external_sync"],
                "sync_jobs": ["crm=*/15 * * * *", "people"],
            },
        )
    )
    try:
        assert sync_declared(application).added == [
            "builtin.periodic_report",
            "builtin.external_sync.crm",
            "builtin.external_sync.people",
        ]
        report = schedules.describe(application, "builtin.periodic_report").schedule
        assert report.task == "monitoring.periodic_report" and report.cron == "0 6 * * *"
        assert report.timezone == "America/Sao_Paulo"
        crm = schedules.describe(application, "builtin.external_sync.crm").schedule
        assert (crm.task, crm.args, crm.cron) == ("maintenance.sync", ["crm"], "*/15 * * * *")
        people = schedules.describe(application, "builtin.external_sync.people").schedule
        assert (people.args, people.cron) == (["people"], "0 * * * *")
    finally:
        close_app(application)
    for name, extra, message in (
        ("periodic_report", {}, r"'monitoring\.report_to', which is empty"),
        ("external_sync", {}, r"'schedules\.sync_jobs', which is empty"),
        ("external_sync", {"sync_jobs": ["a b"]}, "is not 'name' or 'name=<cron>'"),
        ("external_sync", {"sync_jobs": ["crm=61 * * * *"]}, "'crm=61 \\* .* is not valid"),
        ("external_sync", {"sync_jobs": ["crm", "crm=0 1 * * *"]}, "names one job twice"),
        ("x", {}, "unknown"),
    ):
        other = create_app(
            settings_for(
                crawjud_redis,
                crawjud_data_dir,  # type: ignore[arg-type]
                namespace="cjbi",
                schedules={"builtins": [name], **extra},
            )
        )
        try:
            with pytest.raises(SettingsError, match=message):
                sync_declared(other)
        finally:
            close_app(other)
