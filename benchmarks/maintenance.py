"""Maintenance benchmarks: file cleanup speed, and Redis hygiene's effect on other clients.

1. Cleanup: 100,000 old files in 100 folders under a root; ``clean_files`` removes them all
   (files/s reported), after a dry run over the same tree.
2. Hygiene: 1,000,000 library keys (run records without a TTL, idempotency keys with one, results
   with a TTL too long) on a throwaway Redis; one ``redis_hygiene`` pass with its budget, while a
   separate process sends ``GET`` round trips one at a time and records their latency. The same
   probe runs first with Redis idle, for the baseline. Reported: the pass's time, keys scanned,
   and the probe's p50, p99 and maximum, idle and during the pass.

Run: ``python benchmarks/maintenance.py [--files N] [--keys N] [--budget S]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from crawjud_tasks import create_app
from crawjud_tasks._app import close_app
from crawjud_tasks.maintenance import clean_files, redis_hygiene
from crawjud_tasks.testing import RedisServer, settings_for

PROBE = """
import signal, sys, time, redis
client = redis.Redis.from_url(sys.argv[1])
client.ping()
stop = float(sys.argv[2])
told = []
signal.signal(signal.SIGTERM, lambda *_: told.append(1))
out = []
print("ready", flush=True)
while time.time() < stop and not told:
    started = time.perf_counter()
    client.get("probe")
    out.append(time.perf_counter() - started)
    time.sleep(0.001)
print(" ".join(f"{x:.6f}" for x in out))
"""


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def bench_cleanup(files: int) -> None:
    base = Path(tempfile.mkdtemp(prefix="cjt-bench-"))
    root = base / "root"
    folders = 100
    old = time.time() - 40 * 86400
    for index in range(files):
        folder = root / f"d{index % folders:03d}"
        if index < folders:
            folder.mkdir(parents=True)
        path = folder / f"f{index}.log"
        path.write_bytes(b"x" * 100)
        os.utime(path, (old, old))
    with RedisServer() as server:
        settings = settings_for(server, base / "data", maintenance={"roots": [str(root)]})
        app = create_app(settings)
        try:
            started = time.perf_counter()
            dry = clean_files(app, str(root), "*.log", 30 * 86400, dry_run=True)
            dry_s = time.perf_counter() - started
            started = time.perf_counter()
            report = clean_files(app, str(root), "*.log", 30 * 86400)
            real_s = time.perf_counter() - started
        finally:
            close_app(app)
    shutil.rmtree(base, ignore_errors=True)
    print(f"cleanup dry run: {dry.files} files in {dry_s:.2f} s = {dry.files / dry_s:,.0f} files/s")
    print(
        f"cleanup:         {report.files} files in {real_s:.2f} s = "
        f"{report.files / real_s:,.0f} files/s"
    )


def probe(url: str, seconds: float) -> subprocess.Popen[str]:
    """A probe process, started and ready (connected) when this returns."""
    process = subprocess.Popen(
        [sys.executable, "-c", PROBE, url, str(time.time() + seconds + 2)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "ready"
    return process


def latencies(process: subprocess.Popen[str]) -> list[float]:
    out, _ = process.communicate()
    return [float(x) for x in out.split()]


def show(label: str, values: list[float]) -> None:
    print(
        f"  {label:<14} {len(values):>6} GETs  p50 {statistics.median(values) * 1000:6.2f} ms  "
        f"p99 {percentile(values, 0.99) * 1000:6.2f} ms  max {max(values) * 1000:6.2f} ms"
    )


def bench_hygiene(keys: int, budget: float) -> None:
    base = Path(tempfile.mkdtemp(prefix="cjt-bench-"))
    with RedisServer() as server:
        client = server.client(1)
        pipe = client.pipeline(transaction=False)
        for index in range(keys):
            kind = index % 3
            if kind == 0:
                pipe.set(f"crawjud:run:r{index}:state", "s")
            elif kind == 1:
                pipe.set(f"crawjud:idempotency:t:{index}", "task", ex=3600)
            else:
                pipe.set(f"crawjud:celery-task-meta-{index}", "{}", ex=10 * 86400)
            if index % 10_000 == 9_999:
                pipe.execute()
        pipe.execute()
        print(f"hygiene over {client.dbsize():,} keys (budget {budget:g} s)")
        url = server.url_for(1)
        idle = probe(url, 5)
        show("idle", latencies(idle))
        settings = settings_for(
            server, base / "data", maintenance={"hygiene_budget": budget, "hygiene_batch": 500}
        )
        app = create_app(settings)
        try:
            during = probe(url, budget + 5)
            started = time.perf_counter()
            report = redis_hygiene(app)
            seconds = time.perf_counter() - started
            during.terminate()
            values = latencies(during)
        finally:
            close_app(app)
        print(
            f"  pass: {report.scanned:,} keys in {seconds:.1f} s "
            f"({report.scanned / seconds:,.0f} keys/s), complete={report.complete}, "
            f"expired {report.expired:,}, unlinked {report.unlinked:,}"
        )
        show("during the pass", values)
        client.close()
    shutil.rmtree(base, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--budget", type=float, default=60.0)
    args = parser.parse_args()
    if args.files:
        bench_cleanup(args.files)
    if args.keys:
        bench_hygiene(args.keys, args.budget)


if __name__ == "__main__":
    main()
