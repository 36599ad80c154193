"""Monitoring's costs: instructions and Redis commands per executed task with metrics on against
off, a scrape of 200 task names x 4 queues, and ``crawjud-tasks health worker --ready``.

Run: ``python benchmarks/monitoring.py`` (valgrind for the instruction counts).
"""

from __future__ import annotations

import gzip
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import redis

from apps import METRICS_ENV
from callgrind import DRIVER, Job, callgrind_job
from common import BENCH_DIR, child_env, flush, python
from crawjud_tasks import create_app
from crawjud_tasks._app import close_app
from crawjud_tasks._keys import Keys
from crawjud_tasks._redis_server import RedisServer
from crawjud_tasks.monitoring import render_metrics
from crawjud_tasks.monitoring._recorder import Drained, Series
from crawjud_tasks.monitoring._snapshot import read_snapshot
from crawjud_tasks.monitoring._store import write_flush

TASKS = 10_000


#: ``off``/``on``: metrics off and on, with the flush (5 s) and health (2 s) threads firing as
#: configured by default; ``off-quiet``/``quiet``: the same with both threads firing once an
#: hour, so that what a task's signal handlers cost is not mixed with what the threads cost
#: (under callgrind a task takes ~50 times longer, and the threads fire ~50 times more per task).
MODES = ("off", "on", "off-quiet", "quiet")


def instructions(server: RedisServer, modes: tuple[str, ...] = MODES) -> dict[str, float]:
    """Callgrind instructions per executed task (results-ignored group) in each of ``modes``."""
    sizes = ["--warmup", "50", "--segments", "3", "--per-segment", "200"]
    figures: dict[str, float] = {}
    for mode in modes:
        broker, backend = server.url_for(0), server.url_for(1)
        flush(broker, backend)
        urls = ["--kind", "lib", "--broker", broker, "--backend", backend]
        env = child_env() | {METRICS_ENV: mode}
        subprocess.run(
            [python(), str(DRIVER), "publish", *urls, *sizes], env=env, check=True, cwd=BENCH_DIR
        )
        groups = callgrind_job(
            Job("execute", "lib", f"lib-{mode}"), [*urls, *sizes], 200, None, {METRICS_ENV: mode}
        )
        figures[mode] = groups["ignored"]["per_task"]
        figures[f"{mode}-stored"] = groups["stored"]["per_task"]
    return figures


def commands(server: RedisServer) -> dict[str, float]:
    """Redis commands per executed task over ``TASKS`` tasks of each group, metrics off and on."""
    client = redis.Redis.from_url(server.url_for(0))
    per_segment = TASKS // 2
    sizes = ["--warmup", "1", "--segments", "2", "--per-segment", str(per_segment // 2)]
    result: dict[str, float] = {}
    for mode in ("off", "on"):
        broker, backend = server.url_for(0), server.url_for(1)
        flush(broker, backend)
        urls = ["--kind", "lib", "--broker", broker, "--backend", backend]
        env = child_env() | {METRICS_ENV: mode}
        subprocess.run(
            [python(), str(DRIVER), "publish", *urls, *sizes], env=env, check=True, cwd=BENCH_DIR
        )
        before = _calls(client)
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "labels.json"
            subprocess.run(
                [python(), str(DRIVER), "execute", *urls, *sizes, "--out", str(out)],
                env=env,
                check=True,
                cwd=BENCH_DIR,
            )
        executed = 2 * (1 + per_segment)  # both groups
        result[mode] = (_calls(client) - before) / executed
    return result


def _calls(client: redis.Redis) -> int:
    stats: Any = client.info("commandstats")
    return sum(int(value["calls"]) for value in stats.values())


def scrape(server: RedisServer) -> dict[str, float]:
    """Milliseconds per scrape with 200 task names x 4 queues recorded."""
    app = create_app({"broker_url": server.url_for(0), "result_backend": server.url_for(1)})
    try:
        flush(server.url_for(0), server.url_for(1))
        series: dict[tuple[str, str], Series] = {}
        for index in range(200):
            for queue in range(4):
                one = series[f"host.task_{index}", f"queue_{queue}"] = Series()
                one.counts[:] = [5, 5, 5, 3, 1, 1, 0, 0]
                one.failed = {"ValueError": 1}
                one.rt[3:6] = [1, 1, 1]
                one.rt_sum = 0.2
                one.qw[0] = 3
                one.qw_sum = 0.01
        keys = Keys("crawjud:")
        write_flush(
            redis.Redis.from_url(server.url_for(1)),
            keys,
            Drained(series, {}, 0, None),
            host="generic",
            process=None,
            retention=3600,
        )
        times, cpu, reads = [], [], []
        for _ in range(20):
            start = time.perf_counter()
            read_snapshot(app)
            reads.append((time.perf_counter() - start) * 1000)
            start, start_cpu = time.perf_counter(), time.process_time()
            body = render_metrics(app)
            times.append((time.perf_counter() - start) * 1000)
            cpu.append((time.process_time() - start_cpu) * 1000)
        return {
            "median_ms": statistics.median(times),
            "min_ms": min(times),
            "cpu_median_ms": statistics.median(cpu),
            "read_only_median_ms": statistics.median(reads),
            "bytes": len(body),
            "gzip_bytes": len(gzip.compress(body, compresslevel=1)),
        }
    finally:
        close_app(app)


def probe() -> dict[str, float]:
    """Wall milliseconds of ``crawjud-tasks health worker --ready`` on a fresh record."""
    with tempfile.TemporaryDirectory() as tmp:
        now = time.time()
        record = {
            "node": "w@h",
            "written": now + 60,
            "loop": now + 60,
            "connected": True,
            "last_round_trip": now + 60,
            "pool_alive": 1,
            "stalled": False,
            "health_timeout": 600,
        }
        (Path(tmp) / "worker-w@h.json").write_text(json.dumps(record))
        script = str(Path(sys.executable).with_name("crawjud-tasks"))
        figures: dict[str, float] = {}
        for label, extra in (("with --dir", ["--dir", tmp]), ("from settings", [])):
            env = child_env() | {"CRAWJUD_TASKS_MONITORING__HEALTH_DIR": tmp}
            times = []
            for _ in range(7):
                start = time.perf_counter()
                subprocess.run(
                    [script, "health", "worker", "--ready", *extra],
                    env=env,
                    check=True,
                    capture_output=True,
                )
                times.append((time.perf_counter() - start) * 1000)
            figures[label] = statistics.median(times)
        return figures


PARTS = ("instructions", "instructions-quiet", "commands", "scrape", "probe")


def _instructions(server: RedisServer, modes: tuple[str, ...]) -> dict[str, Any]:
    figures = instructions(server, modes)
    report: dict[str, Any] = {"instructions_per_task": figures}
    for on, off in (("on", "off"), ("quiet", "off-quiet")):
        if on in figures and off in figures:
            overhead = 100 * (figures[on] - figures[off]) / figures[off]
            report[f"instructions_overhead_pct_{on}"] = overhead
    return report


def main() -> None:
    """Run every part, or those named: ``instructions``, ``commands``, ``scrape``, ``probe``."""
    parts = sys.argv[1:] or list(PARTS)
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        sys.exit(f"unknown part(s) {unknown}; choose from {list(PARTS)}")
    report: dict[str, Any] = {}
    with RedisServer() as server:
        if "instructions" in parts:
            report.update(_instructions(server, MODES))
        if "instructions-quiet" in parts:
            report.update(_instructions(server, ("off-quiet", "quiet")))
        if "commands" in parts:
            report["redis_commands_per_task"] = commands(server)
        if "scrape" in parts:
            report["scrape_200x4"] = scrape(server)
        if "probe" in parts:
            report["health_worker_ready_ms"] = probe()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
