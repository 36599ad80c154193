"""Bot-run throughput: 10,000 items through ``execute_bot`` in one worker, bookkeeping on and off.

    PYTHONPATH=src python benchmarks/bots.py [--items 10000] [--rounds 5] [--profile]

One throwaway Redis server on 127.0.0.1 (no append-only file), a 10,000-row CSV (columns
``NUMERO``, ``CLIENTE``, ``OBS``) inside ``bots.allowed_roots``, and ONE worker subprocess
(``WorkerProcess``, ``--app bot_apps:app``, pool ``prefork``, concurrency 1) that imports this
checkout's code. ``bots.events_max`` is 20,000 so that the stream keeps the whole run (the
default, 10,000, trims the oldest item events of a 10,000-item run, and the first ones are what
the loop's start is read from). Rows, each run once per round in a rotating order after one
untimed warm-up of each on a 200-row file:

- ``noop on``: ``execute_bot`` of ``bench.noop`` (``process`` returns ``ItemOutcome.success()``):
  every item checkpointed (RPUSH), an ``item`` event (XADD), the state hash and the task's
  PROGRESS state once a second, the cancel watcher's EXISTS every 0.25 s, the run's lease, and
  the report (CSV, XLSX, JSON summary, zipped) at the end. ``noop on B`` is the same again: the
  A/A control.
- ``wide on``: ``bench.wide``: the same with 5 columns of data per item (about 150 bytes).
- ``noop off`` / ``wide off``: the plain task ``crawjud.bots.bench_loop`` in the same worker:
  the same file read with the library's reader, the same bot's ``process`` over every item, no
  checkpoint, event, state or report.

Figures per row (medians over rounds):

- ``run/s``: items / (the result's ``finished_at`` - ``started_at``): the whole run inside the
  worker (lease, input, setup, items, teardown, report). Off rows: items / (read + loop).
- ``loop/s``: the item loop only: (items - 1) / (last ``item`` event time - first one). Off
  rows: items / loop time.
- ``before``: ``started_at`` to the first ``item`` event (lease, reading the input, checkpoint,
  setup); ``after``: the last ``item`` event to ``finished`` (teardown, report, final state).
- ``cmds/item``: Redis commands per item from ``INFO commandstats`` deltas around the run
  (everything: Celery's few commands per task included), and the Redis server's CPU per item.

``--profile`` also runs ``bench.noop`` and ``bench.wide`` in this process, under cProfile, with
the library's own ``Run`` built as the task builds it (a real Redis, a stand-in for the Celery
task that stores PROGRESS in the real backend), and prints where the time goes.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import redis

from crawjud_tasks import create_app
from crawjud_tasks.bots import run_events
from crawjud_tasks.bots.contracts import BotInput, BotParameters, RunStatus, execute_bot
from crawjud_tasks.testing import RedisServer, WorkerProcess, close_app, settings_for

BENCH_DIR = Path(__file__).resolve().parent
#: This checkout's sources, first on the worker's PYTHONPATH (the venv may hold another checkout).
SRC = BENCH_DIR.parent / "src"
TIMEOUT = 300.0
TARGET = 3000.0


class Counters:
    """The Redis server's command counters and CPU seconds."""

    def __init__(self, url: str) -> None:
        self.client = redis.Redis.from_url(url)
        self.client.ping()

    def read(self) -> dict[str, float]:
        stats: dict[str, Any] = self.client.info("commandstats")
        out = {key.removeprefix("cmdstat_"): float(v["calls"]) for key, v in stats.items()}
        info: dict[str, Any] = self.client.info("stats")
        cpu: dict[str, Any] = self.client.info("cpu")
        out["_total"] = float(info["total_commands_processed"])
        out["_cpu"] = float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])
        return out

    @staticmethod
    def difference(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
        diff = {name: after.get(name, 0) - before.get(name, 0) for name in after}
        diff["_total"] -= 3  # this reading's three INFO calls
        diff.pop("info", None)
        return {name: value for name, value in diff.items() if value}


def write_csv(path: Path, n: int) -> None:
    lines = ["NUMERO;CLIENTE;OBS"]
    lines += [f"{i:07d};Cliente {i % 97};observacao {i}" for i in range(n)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def run_on(app: Any, bot_id: str, path: Path, n: int, done: Callable[[], None]) -> dict[str, float]:
    """One ``execute_bot`` run; its figures from the result and the event stream (read after
    ``done()``, which takes the Redis counters)."""
    run_id = f"bench-{uuid.uuid4().hex[:10]}"
    params = BotParameters(input=BotInput.from_file(str(path)), run_id=run_id)
    sent = time.perf_counter()
    result = execute_bot.using(app).delay(bot_id, 0, params).get(timeout=TIMEOUT)
    client_elapsed = time.perf_counter() - sent
    done()
    if result.status is not RunStatus.COMPLETED or result.counts.succeeded != n:
        msg = f"{bot_id}: {result.status.value} {result.counts} {result.error}"
        raise SystemExit(msg)
    items = [e.time.timestamp() for e in run_events(app, run_id) if e.kind == "item"]
    finished = next(e for e in run_events(app, run_id) if e.kind == "finished").time.timestamp()
    if len(items) != n:
        msg = f"{bot_id}: {len(items)} item events kept of {n}: raise bots.events_max"
        raise SystemExit(msg)
    started, ended = result.started_at.timestamp(), result.finished_at.timestamp()
    return {
        "run": n / (ended - started),
        "loop": (n - 1) / (items[-1] - items[0]),
        "before": items[0] - started,
        "after": finished - items[-1],
        "client": n / client_elapsed,
    }


def run_off(
    app: Any, bot_id: str, path: Path, n: int, done: Callable[[], None]
) -> dict[str, float]:
    """The plain loop task over the same file."""
    sent = time.perf_counter()
    out: dict[str, Any] = app.send_task("crawjud.bots.bench_loop", args=(bot_id, str(path))).get(
        timeout=TIMEOUT
    )
    client_elapsed = time.perf_counter() - sent
    done()
    if out["items"] != n or out["ok"] != n:
        msg = f"{bot_id} off: {out}"
        raise SystemExit(msg)
    return {
        "run": n / (out["read"] + out["loop"]),
        "loop": n / out["loop"],
        "before": out["read"],
        "after": 0.0,
        "client": n / client_elapsed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--profile", action="store_true", help="also profile in this process")
    args = parser.parse_args()
    n = args.items
    data_dir = Path(tempfile.mkdtemp(prefix="cjt-bots-"))
    inputs = data_dir / "inputs"
    inputs.mkdir()
    big, small = inputs / "items.csv", inputs / "warmup.csv"
    write_csv(big, n)
    write_csv(small, 200)
    rows: dict[str, tuple[str, str]] = {
        "noop on": ("on", "bench.noop"),
        "wide on": ("on", "bench.wide"),
        "noop off": ("off", "bench.noop"),
        "wide off": ("off", "bench.wide"),
        "noop on B": ("on", "bench.noop"),
    }
    figures: dict[str, list[dict[str, float]]] = {name: [] for name in rows}
    try:
        with RedisServer(appendonly=False) as server:
            settings = settings_for(
                server, data_dir, bots={"allowed_roots": [str(inputs)], "events_max": 20_000}
            )
            app = create_app(settings)
            counters = Counters(server.url_for(0))
            env = {
                **settings.to_env(),
                "PYTHONPATH": os.pathsep.join(
                    filter(None, [str(SRC), str(BENCH_DIR), os.environ.get("PYTHONPATH")])
                ),
            }
            worker = WorkerProcess(
                app, app_spec="bot_apps:app", env=env, pool="prefork", concurrency=1
            )

            def measure(name: str, path: Path, count: int) -> dict[str, float]:
                kind, bot_id = rows[name]
                runner: Callable[..., dict[str, float]] = run_on if kind == "on" else run_off
                before = counters.read()
                after: dict[str, float] = {}
                out = runner(app, bot_id, path, count, lambda: after.update(counters.read()))
                diff = Counters.difference(before, after)
                out["cmds"] = diff.pop("_total") / count
                out["redis_cpu_us"] = diff.pop("_cpu", 0.0) / count * 1e6
                out["by_command"] = diff  # type: ignore[assignment]  # the one nested entry of a flat figures dict
                return out

            with worker:
                for name in rows:  # warm-up: imports, connections, the report writer
                    measure(name, small, 200)
                names = list(rows)
                for r in range(args.rounds):
                    order = names[r % len(names) :] + names[: r % len(names)]
                    for name in order:
                        figures[name].append(measure(name, big, n))
                    print(f"round {r + 1}: " + ", ".join(
                        f"{name} {figures[name][-1]['run']:,.0f}/s" for name in names
                    ), file=sys.stderr, flush=True)  # fmt: skip
            if args.profile:
                profile(settings, big, n)
            counters.client.close()
            close_app(app)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    report(figures, n, args.rounds)


def report(figures: dict[str, list[dict[str, float]]], n: int, rounds: int) -> None:
    def med(name: str, key: str) -> float:
        return statistics.median(f[key] for f in figures[name])

    print(f"\n{n:,} items per run, one prefork worker (concurrency 1), median of {rounds} rounds")
    print(
        f"{'':11}{'run/s':>8}{'loop/s':>9}{'before':>9}{'after':>8}{'e2e/s':>8}"
        f"{'cmds/item':>11}{'redis us/item':>15}   run/s by round"
    )
    for name, values in figures.items():
        rounds_text = ", ".join(f"{f['run']:,.0f}" for f in values)
        print(
            f"{name:11}{med(name, 'run'):8,.0f}{med(name, 'loop'):9,.0f}"
            f"{med(name, 'before'):8.3f}s{med(name, 'after'):7.3f}s{med(name, 'client'):8,.0f}"
            f"{med(name, 'cmds'):11.3f}{med(name, 'redis_cpu_us'):15.1f}   {rounds_text}"
        )
    for bot_name in ("noop", "wide"):
        on, off = f"{bot_name} on", f"{bot_name} off"
        print(
            f"{bot_name}: on/off run {med(on, 'run') / med(off, 'run'):.3f}, "
            f"loop {med(on, 'loop') / med(off, 'loop'):.3f}; per item on "
            f"{1e6 / med(on, 'loop'):.0f} us in the loop, off {1e6 / med(off, 'loop'):.1f} us"
        )
        run_time = n / med(on, "run")
        print(
            f"  {on}: share of the run before the first item "
            f"{med(on, 'before') / run_time:.1%}, after the last {med(on, 'after') / run_time:.1%}"
        )
    print(f"A/A: noop on B / noop on: run {med('noop on B', 'run') / med('noop on', 'run'):.3f}")
    last = figures["noop on"][-1]["by_command"]
    per = ", ".join(
        f"{cmd} {count / n:.3f}"
        for cmd, count in sorted(last.items())  # type: ignore[union-attr]  # "by_command" holds the dict
    )
    print(f"commands per item (noop on, last round): {per}")
    verdict = "meets" if med("noop on", "run") >= TARGET else "misses"
    print(f"noop on {verdict} the target of {TARGET:,.0f} items/s (whole run)")


def profile(settings: Any, path: Path, n: int) -> None:
    """Run the library's ``Run`` in this process under cProfile; print where the time goes."""
    os.environ.update(settings.to_env())
    sys.path.insert(0, str(BENCH_DIR))
    import bot_apps  # noqa: PLC0415  (its app reads the settings from the environment)
    from crawjud_tasks.bots._run import Run  # noqa: PLC0415
    from crawjud_tasks.bots._runner import execute  # noqa: PLC0415

    app = bot_apps.app

    def one(bot_id: str, profiler: cProfile.Profile | None) -> float:
        run_id = f"prof-{uuid.uuid4().hex[:10]}"
        task = SimpleNamespace(
            request=SimpleNamespace(id=run_id),
            update_state=lambda state, meta: app.backend.store_result(run_id, meta, state),
        )
        params = BotParameters(input=BotInput.from_file(str(path)), run_id=run_id)
        run = Run(app, task, bot_id, 0, params)
        started = time.perf_counter()
        if profiler is not None:
            profiler.enable()
        result = execute(run)
        if profiler is not None:
            profiler.disable()
        elapsed = time.perf_counter() - started
        assert result.counts.succeeded == n, result
        return n / elapsed

    for bot_id in ("bench.noop", "bench.wide"):
        one(bot_id, None)  # warm-up
        plain = statistics.median(one(bot_id, None) for _ in range(3))
        profiler = cProfile.Profile()
        profiled = one(bot_id, profiler)
        print(
            f"\n{bot_id} in this process: {plain:,.0f} items/s (median of 3), "
            f"{profiled:,.0f} under cProfile"
        )
        text = io.StringIO()
        stats = pstats.Stats(profiler, stream=text)
        stats.sort_stats("cumulative").print_stats(40)
        stats.sort_stats("tottime").print_stats(25)
        print(text.getvalue())


if __name__ == "__main__":
    main()
