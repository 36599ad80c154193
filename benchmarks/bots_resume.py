"""Bot-run resume after a kill: seconds from the SIGKILL to the first item of the resumed run.

    PYTHONPATH=src python benchmarks/bots_resume.py [--rounds 3] [--worker-rounds 1]

One throwaway Redis server on 127.0.0.1 (no append-only file) and ``bench.sleepy`` runs
(``benchmarks/bot_apps.py``) over a 2,000-row CSV file, each item sleeping ``--delay`` seconds
(2 ms by default); ``setup`` logs ``pid <pid>``, the pool process that runs the
run). The kill comes once the run's state counts ``--kill-at`` items done (300). Each figure is
read from the run's own event stream (event times are the worker's ``time.time()``, on this
machine's clock) against this process's ``time.time()`` at the kill:

- ``to started``: the kill to the resumed delivery's ``started`` event (the message back in a
  queue, a pool process taking it, the run's lease, the input read again, the checkpoint read);
- ``to first item``: the kill to the first ``item`` event after it (``setup`` too).

Two cases:

- ``child``: a prefork worker (concurrency 2) whose pool process running the run is SIGKILLed.
  The worker's main process sees its child die, requeues the message at once
  (``reject_on_worker_lost``) and frees the dead process's run lease; the visibility timeout
  plays no part. Measured with ``visibility_timeout`` 20 s (as in ``tests/test_bots_run.py``)
  and with the default (3,600 s).
- ``worker``: two prefork workers (concurrency 1) run; the one whose pool process runs the run
  is SIGKILLed whole (its process group: main process and child). Nobody requeues the message:
  it stays in the broker's unacknowledged hash until the surviving worker's kombu restores it,
  which it does for messages older than the visibility timeout (the run's heartbeat last
  touched the entry at most a third of the lease's ttl before the kill). kombu 5.7 looks every
  ``unacked_restore_interval`` (10 s) but scans only every ``unacked_restore_throttle``-th look
  (10): once every 100 s. Measured with ``visibility_timeout`` 20 s, with kombu's defaults and
  with ``unacked_restore_throttle`` 1 (``celery.broker_transport_options``: a sweep every
  10 s). With the default visibility timeout, 3,600 s, the run would wait about an hour, which
  this benchmark does not.

Each resumed run is cancelled (``cancel_run``) once its first item is seen, to keep rounds
short; the checkpoint is then checked to hold each item index at most once.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from crawjud_tasks import Settings, create_app
from crawjud_tasks._settings import DEFAULT_VISIBILITY_TIMEOUT
from crawjud_tasks._state import app_state
from crawjud_tasks.bots import cancel_run, run_events, run_state
from crawjud_tasks.bots.contracts import BotInput, BotParameters, RunStatus, execute_bot
from crawjud_tasks.testing import RedisServer, WorkerProcess, close_app, settings_for

BENCH_DIR = Path(__file__).resolve().parent
SRC = BENCH_DIR.parent / "src"


def wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.01)
    msg = f"timed out after {timeout} s waiting for {what}"
    raise SystemExit(msg)


def logged_pid(app: Any, run_id: str) -> int | None:
    for event in run_events(app, run_id):
        if event.kind == "log" and (event.message or "").startswith("pid "):
            return int((event.message or "").split()[1])
    return None


def resumed(app: Any, run_id: str) -> tuple[float, float] | None:
    """Times of the second ``started`` event and of the first ``item`` event after it."""
    starts = 0
    started_at = 0.0
    for event in run_events(app, run_id):
        if event.kind == "started":
            starts += 1
            started_at = event.time.timestamp()
        elif event.kind == "item" and starts >= 2:
            return started_at, event.time.timestamp()
    return None


def one_round(
    app: Any, path: Path, delay: float, kill_at: int, timeout: float, kill: Callable[[int], None]
) -> dict[str, float]:
    run_id = f"resume-{uuid.uuid4().hex[:10]}"
    params = BotParameters(
        input=BotInput.from_file(str(path)), options={"delay": delay}, run_id=run_id
    )
    handle = execute_bot.using(app).delay("bench.sleepy", 0, params)
    pid = wait_for(lambda: logged_pid(app, run_id), 60, "the bot's pid line")

    def done() -> bool:
        state = run_state(app, run_id)
        return state is not None and state.counts.done >= kill_at

    wait_for(done, 60, f"{kill_at} items done")
    killed_at = time.time()
    kill(pid)
    started, first_item = wait_for(lambda: resumed(app, run_id), timeout, "the resumed run")
    cancel_run(app, run_id)
    result = handle.get(timeout=120)
    if result.status is not RunStatus.CANCELLED:
        msg = f"{run_id}: ended {result.status.value}, expected cancelled"
        raise SystemExit(msg)
    client: Any = app_state(app).redis
    lines: list[bytes] = client.lrange(app_state(app).keys.run(run_id, "items"), 0, -1)
    indices = [int(line.split(b'"i":', 1)[1].split(b",", 1)[0]) for line in lines]
    return {
        "to_started": started - killed_at,
        "to_first_item": first_item - killed_at,
        "duplicates": float(len(indices) - len(set(indices))),
    }


def worker_for(app: Any, settings: Settings, concurrency: int) -> WorkerProcess:
    env = {
        **settings.to_env(),
        "PYTHONPATH": os.pathsep.join(
            filter(None, [str(SRC), str(BENCH_DIR), os.environ.get("PYTHONPATH")])
        ),
    }
    return WorkerProcess(
        app, app_spec="bot_apps:app", env=env, pool="prefork", concurrency=concurrency
    )


def parent_of(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--delay", type=float, default=0.002)
    parser.add_argument("--kill-at", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--worker-rounds", type=int, default=1)
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="cjt-resume-"))
    inputs = data_dir / "inputs"
    inputs.mkdir()
    path = inputs / "items.csv"
    path.write_text("NUMERO\n" + "".join(f"{i:07d}\n" for i in range(args.items)), encoding="utf-8")
    rows: dict[str, list[dict[str, float]]] = {}
    workers: list[WorkerProcess] = []
    try:
        with RedisServer(appendonly=False) as server:
            cases = [
                ("child", 20.0, None, args.rounds),
                ("child", DEFAULT_VISIBILITY_TIMEOUT, None, args.rounds),
                ("worker", 20.0, None, args.worker_rounds),
                ("worker", 20.0, 1, args.worker_rounds),
            ]
            for case, timeout, throttle, rounds in cases:
                if rounds <= 0:
                    continue
                server.client().flushall()
                settings = settings_for(
                    server,
                    data_dir,
                    bots={"allowed_roots": [str(inputs)]},
                    visibility_timeout=timeout,
                    celery={}
                    if throttle is None
                    else {"broker_transport_options": {"unacked_restore_throttle": throttle}},
                )
                app = create_app(settings)
                name = f"{case} kill, visibility {timeout:,.0f} s"
                if throttle is not None:
                    name += f", throttle {throttle}"
                rows[name] = []
                if case == "child":
                    workers[:] = [worker_for(app, settings, 2).start()]
                    for _ in range(rounds):
                        rows[name].append(
                            one_round(
                                app, path, args.delay, args.kill_at, 60,
                                lambda pid: os.kill(pid, signal.SIGKILL),
                            )
                        )  # fmt: skip
                        print(f"{name}: {rows[name][-1]}", file=sys.stderr, flush=True)
                else:
                    workers[:] = [worker_for(app, settings, 1).start() for _ in range(2)]

                    def kill_worker(pid: int) -> None:
                        owner = parent_of(pid)
                        victim = next(w for w in workers if w.pid == owner)
                        victim.kill()
                        victim.log_path.unlink(missing_ok=True)
                        workers.remove(victim)

                    for _ in range(rounds):
                        rows[name].append(
                            one_round(
                                app, path, args.delay, args.kill_at, timeout + 130, kill_worker
                            )
                        )
                        print(f"{name}: {rows[name][-1]}", file=sys.stderr, flush=True)
                        workers.append(worker_for(app, settings, 1).start())  # two again
                for worker in workers:
                    worker.stop()
                    worker.log_path.unlink(missing_ok=True)
                workers.clear()
                close_app(app)
    finally:
        for worker in workers:
            worker.kill()
            worker.log_path.unlink(missing_ok=True)
        shutil.rmtree(data_dir, ignore_errors=True)
    print(
        f"\nresume after SIGKILL: {args.items:,} items of {args.delay * 1000:g} ms, kill after "
        f"{args.kill_at}; seconds from the kill, median (min-max) over rounds"
    )
    print(f"{'':48}{'to started':>20}{'to first item':>22}   duplicates")
    for name, values in rows.items():

        def cell(key: str, figures: list[dict[str, float]] = values) -> str:
            data = [f[key] for f in figures]
            return f"{statistics.median(data):.2f} ({min(data):.2f}-{max(data):.2f})"

        dupes = sum(int(f["duplicates"]) for f in values)
        print(f"{name:48}{cell('to_started'):>20}{cell('to_first_item'):>22}   {dupes}")


if __name__ == "__main__":
    main()
