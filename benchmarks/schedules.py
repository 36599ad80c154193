"""Benchmark: 10,000 schedules due in the same minute, fired by one beat.

Stores ``--count`` schedules (``cron="* * * * *"``) on a fresh redis-server, then runs the
beat's scheduler (:class:`ScheduleScheduler`, the code ``crawjud-tasks beat`` runs) on a clock
that puts the next minute boundary at the start of the measurement, ticking as beat does until
every schedule has fired once. Reported: wall time from the due instant to the last publish
(target: under 60 s), beat CPU per fire (process CPU time of the ticks / fires), Redis commands
per fire (``INFO`` ``total_commands_processed``, both databases), and the messages found in the
queue (must equal the count: none lost, none twice).

Run: ``python benchmarks/schedules.py [--count 10000]`` (nicely: ``nice`` on a shared machine).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from crawjud_tasks import create_app, task_contract
from crawjud_tasks.schedules import Schedule, ScheduleScheduler
from crawjud_tasks.schedules._store import ScheduleStore
from crawjud_tasks.testing import RedisServer, close_app, settings_for


@task_contract("bench.noop")
def noop(n: int) -> None:
    """A task that is only sent, never run here."""
    raise NotImplementedError


def _commands(client: redis.Redis) -> int:
    info = client.info("stats")
    return int(info["total_commands_processed"])


def main() -> None:
    """Store the schedules, fire them, print the figures."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=10_000)
    count = parser.parse_args().count
    minute = 60_000
    with tempfile.TemporaryDirectory() as data_dir, RedisServer(appendonly=False) as server:
        settings = settings_for(server, Path(data_dir), namespace="bench")
        app = create_app(settings)
        start_wall = round(time.time() * 1000)
        boundary = (start_wall // minute + 1) * minute  # the next minute: every schedule's fire
        offset = [0]

        def clock() -> int:
            return round(time.time() * 1000) + offset[0]

        store = ScheduleStore(app, lambda: start_wall)
        t0 = time.perf_counter()
        for index in range(count):
            schedule = Schedule(id=f"s{index:05d}", task=noop.s(index), cron="* * * * *")
            store.put(schedule.stored(), mode="add")
        stored_s = time.perf_counter() - t0
        client = redis.Redis.from_url(server.url_for(1))
        broker = redis.Redis.from_url(server.url_for(0))
        scheduler = ScheduleScheduler(app, clock=clock)
        # From now on the clock reads the minute boundary: every schedule is due at once.
        offset[0] = boundary - round(time.time() * 1000)
        commands_before = _commands(client)
        cpu0 = time.process_time()
        wall0 = time.perf_counter()
        ticks = 0
        while True:
            scheduler.tick()
            ticks += 1
            first = client.zrange(f"{settings.key_prefix}schedules:due", 0, 0, withscores=True)
            if not first or float(first[0][1]) > boundary:
                break
        wall = time.perf_counter() - wall0
        cpu = time.process_time() - cpu0
        commands = _commands(client) - commands_before - 2 * ticks  # minus our zrange/info
        queued = broker.llen("bench")
        scheduler.close()
        close_app(app)
    print(f"schedules stored: {count} in {stored_s:.1f} s")
    print(f"ticks: {ticks}; all due fires dispatched in {wall:.2f} s wall (target < 60 s)")
    print(f"beat CPU: {cpu:.2f} s = {cpu / count * 1e6:.0f} us per fire")
    print(
        f"Redis commands (both dbs, broker included): {commands} = {commands / count:.2f} per fire"
    )
    print(f"messages queued: {queued} (expected {count})")


if __name__ == "__main__":
    main()
