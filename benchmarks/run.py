"""crawjud-tasks against raw Celery, in one run, on one throwaway Redis server on 127.0.0.1.

    python benchmarks/run.py            # the full run (about 9 minutes on 2 cores)
    python benchmarks/run.py --quick    # a smoke run (about 3 minutes)
    python benchmarks/run.py --rounds 7 --explain
    python benchmarks/run.py --only callgrind --explain   # where the instructions differ

Prints each figure with the ratio library/raw and writes everything to
``benchmarks/results/latest.json``. See docs/benchmarks.md for what each figure means.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import callgrind
import cold_demo
import redis_commands
import wallclock
from common import BENCH_DIR, median, ratio
from crawjud_tasks._redis_server import RedisServer

PARTS = ("callgrind", "commands", "wallclock", "demo")
#: Targets of the issue: lib/raw instructions at most this, the cold demo under this many seconds.
MAX_INSTRUCTION_RATIO = 1.03
MAX_DEMO_SECONDS = 15.0
#: Commands per task that timing alone moves (e.g. a GET skipped when a result came first).
COMMANDS_TOLERANCE = 0.05
#: Segments of one callgrind run normally agree to this fraction (medians repeat much closer).
MAX_SPREAD = 0.005
#: The instruction rows: (mode, lib job, raw job, title, whether the target applies). ``lib`` and
#: ``raw`` in ``execute`` are each worker on the one queue its tasks go to (the headline);
#: ``lib-4q`` is the library's worker on its four queues (its default), ``raw-4q`` raw Celery's
#: on four queues. The last row, lib on four queues against raw on one, is for information.
COMPARISONS = (
    ("dispatch", "lib", "raw", "dispatch (apply_async)", True),
    ("execute", "lib", "raw", "executed task (solo worker), one queue", True),
    ("execute", "lib-4q", "raw-4q", "executed task, four queues each", True),
    ("execute", "lib-4q", "raw", "  info: lib on four queues / raw on one", False),
)
#: The cProfile call diffs of --explain: title -> (mode, reference job, measured job). The last
#: one is not the library's: what consuming four queues instead of one costs raw Celery.
CALL_DIFFS = {
    "dispatch (raw, lib)": ("dispatch", "raw", "lib"),
    "executed task, one queue (raw, lib)": ("execute", "raw", "lib"),
    "executed task, four queues each (raw-4q, lib-4q)": ("execute", "raw-4q", "lib-4q"),
    "executed task, raw on one queue and on four (raw, raw-4q)": ("execute", "raw", "raw-4q"),
}


@dataclass(frozen=True)
class Sizes:
    """How much work each part does."""

    cg_warmup: int
    cg_segments: int
    cg_per_segment: int
    commands_tasks: int
    rounds: int
    dispatches: int
    tasks: int
    rtt: int
    demo_runs: int


FULL = Sizes(50, 3, 100, 1_000, 5, 10_000, 1_000, 500, 3)
QUICK = Sizes(10, 2, 20, 200, 2, 1_000, 200, 100, 1)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small counts, for a smoke run")
    parser.add_argument("--rounds", type=int, help="wall-clock rounds (default 5, quick 2)")
    parser.add_argument("--only", choices=PARTS, action="append", help="run only these parts")
    parser.add_argument(
        "--explain",
        action="store_true",
        help="also count the Python calls per task of the compared jobs, and of raw on one and "
        "four queues (cProfile), and list the largest differences (done anyway when an "
        "instruction ratio is over target)",
    )
    parser.add_argument(
        "--out", type=Path, default=BENCH_DIR / "results" / "latest.json", help="JSON results"
    )
    args = parser.parse_args()
    sizes = QUICK if args.quick else FULL
    if args.rounds is not None:
        sizes = Sizes(**(asdict(sizes) | {"rounds": args.rounds}))
    parts = args.only or list(PARTS)
    command = shlex.join(["python", "benchmarks/run.py", *sys.argv[1:]])
    results: dict[str, Any] = {"command": command, "sizes": asdict(sizes)}
    started = time.monotonic()
    with RedisServer(appendonly=False) as server:
        results["meta"] = _meta(server)
        url = server.url_for(0)
        if "callgrind" in parts:
            _section("1/4 instructions (valgrind --tool=callgrind)")
            results["callgrind"] = callgrind.run_jobs(
                url,
                callgrind.JOBS,
                warmup=sizes.cg_warmup,
                segments=sizes.cg_segments,
                per_segment=sizes.cg_per_segment,
                keep_dir=args.out.parent / "callgrind",
            )
            over = _instruction_ratios(results["callgrind"])
            if args.explain or any(value > MAX_INSTRUCTION_RATIO for value in over.values()):
                print("  over target or --explain: counting Python calls per task (cProfile)")
                results["python_calls"] = {
                    title: callgrind.call_diff(
                        url,
                        callgrind.find_job(mode, reference),
                        callgrind.find_job(mode, measured),
                        warmup=50,
                        segments=3,
                        per_segment=100,
                        top=12,
                    )
                    for title, (mode, reference, measured) in CALL_DIFFS.items()
                }
        if "commands" in parts:
            _section("2/4 Redis commands per task")
            results["redis_commands"] = redis_commands.measure(url, tasks=sizes.commands_tasks)
        if "wallclock" in parts:
            _section("3/4 wall clock")
            results["wallclock"] = wallclock.run_rounds(
                url, rounds=sizes.rounds, dispatches=sizes.dispatches, tasks=sizes.tasks,
                rtt=sizes.rtt,
            )  # fmt: skip
    if "demo" in parts:
        _section("4/4 cold crawjud-tasks demo")
        results["demo"] = cold_demo.measure(runs=sizes.demo_runs)
    results["meta"]["elapsed_s"] = time.monotonic() - started
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print()
    print(report(results))
    print(f"\nresults: {args.out}")


def _section(title: str) -> None:
    print(f"\n== {title}", flush=True)


def _meta(server: RedisServer) -> dict[str, Any]:
    client = server.client()
    try:
        redis_version = client.info("server")["redis_version"]
    finally:
        client.close()
    valgrind = subprocess.run(
        ["valgrind", "--version"], capture_output=True, text=True, check=False
    )
    git = subprocess.run(
        ["git", "-C", str(BENCH_DIR), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    )
    changed = subprocess.run(
        ["git", "-C", str(BENCH_DIR.parent), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
        check=False,
    )
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "commit": git.stdout.strip() or None,
        #: Tracked files that differ from the commit (the run measured the working tree).
        "changed_files": sorted(line[3:] for line in changed.stdout.splitlines()),
        "python": platform.python_version(),
        "versions": {
            name: metadata.version(name)
            for name in ("crawjud-tasks", "celery", "kombu", "redis", "billiard")
        },
        "redis_server": redis_version,
        "valgrind": valgrind.stdout.strip() or None,
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
    }


def _instruction_ratios(figures: dict[str, Any]) -> dict[str, float]:
    """lib/raw of each comparison that has a target, by ``"<lib>/<raw> <mode>-<group>"``."""
    out = {}
    for mode, lib, raw, _title, targeted in COMPARISONS:
        by_name = figures.get(mode, {})
        if not targeted or lib not in by_name or raw not in by_name:
            continue
        for group in ("stored", "ignored"):
            value = ratio(by_name[lib][group]["per_task"], by_name[raw][group]["per_task"])
            if value is not None:
                out[f"{lib}/{raw} {mode}-{group}"] = value
    return out


# -- the report ------------------------------------------------------------------------------


def report(results: dict[str, Any]) -> str:
    """The final table, as text."""
    meta = results["meta"]
    versions = ", ".join(f"{name} {version}" for name, version in meta["versions"].items())
    changed = meta.get("changed_files")
    lines = [
        "=" * 100,
        f"crawjud-tasks vs raw Celery   {meta['date']}   commit {meta['commit']}"
        + (f" + uncommitted changes in {', '.join(changed)}" if changed else ""),
        f"{versions}; Python {meta['python']}; redis-server {meta['redis_server']}; "
        f"{meta['cpus']} CPUs",
        f"command: {results['command']}   ({meta['elapsed_s'] / 60:.1f} min)",
        "=" * 100,
    ]
    if "callgrind" in results:
        lines += _callgrind_table(results)
    if "python_calls" in results:
        lines += _calls_table(results["python_calls"])
    if "redis_commands" in results:
        lines += _commands_table(results["redis_commands"])
    if "wallclock" in results:
        lines += _wallclock_table(results)
    if "demo" in results:
        seconds = results["demo"]["seconds"]
        verdict = "OK" if max(seconds) < MAX_DEMO_SECONDS else "OVER TARGET"
        lines += [
            "",
            f"4. Cold `crawjud-tasks demo` (fresh data dir): median {median(seconds):.2f} s, "
            f"max {max(seconds):.2f} s over {len(seconds)} run(s); "
            f"target < {MAX_DEMO_SECONDS:.0f} s  {verdict}",
        ]
    return "\n".join(lines)


def _callgrind_table(results: dict[str, Any]) -> list[str]:
    figures = results["callgrind"]
    sizes = results["sizes"]
    lines = [
        "",
        f"1. Instructions per task (callgrind Ir; median of {sizes['cg_segments']} segments of "
        f"{sizes['cg_per_segment']} tasks after {sizes['cg_warmup']} warm-up; spread = "
        "(max-min)/median)",
        f"   {'':<50}{'raw':>11}{'lib':>11}{'lib/raw':>8}{'spread raw/lib':>15}  target <= "
        f"{MAX_INSTRUCTION_RATIO:.2f}",
    ]
    for mode, lib_name, raw_name, title, targeted in COMPARISONS:
        by_name = figures.get(mode, {})
        if lib_name not in by_name or raw_name not in by_name:
            continue
        for group in ("stored", "ignored"):
            raw, lib = by_name[raw_name][group], by_name[lib_name][group]
            value = ratio(lib["per_task"], raw["per_task"]) or 0.0
            spread = f"{raw['spread']:.2%}/{lib['spread']:.2%}"
            noisy = " (noisy)" if max(raw["spread"], lib["spread"]) > MAX_SPREAD else ""
            verdict = "OK" if value <= MAX_INSTRUCTION_RATIO else "OVER TARGET"
            lines.append(
                f"   {title + ', ' + group:<50}{raw['per_task']:>11,.0f}"
                f"{lib['per_task']:>11,.0f}{value:>8.3f}{spread:>15}  "
                f"{verdict if targeted else '-'}{noisy}"
            )
    queues = {
        name: ",".join(groups["stored"]["queues"])
        for name, groups in figures.get("execute", {}).items()
    }
    if queues:
        lines.append("   queues consumed: " + "; ".join(f"{n} {q}" for n, q in queues.items()))
    return lines


def _calls_table(calls: dict[str, Any]) -> list[str]:
    lines = [
        "",
        "   Python calls per task that differ (cProfile; columns: the first job in brackets, the "
        "second, second - first; top differences):",
    ]
    for title, groups in calls.items():
        for group, rows in groups.items():
            lines.append(f"   {title}, results {group}:")
            lines += [
                f"     {row['reference']:>9.2f} {row['measured']:>9.2f} {row['diff']:>+8.2f}  "
                f"{row['function'][:70]}"
                for row in rows
            ]
    return lines


def _commands_table(figures: dict[str, Any]) -> list[str]:
    labels = figures["labels"]
    lines = [
        "",
        "2. Redis commands per task (dispatch + execute through a prefork worker; INFO stats/"
        "commandstats;",
        "   lib's worker on its four queues, the CLI default; raw's on `celery`)",
        f"   {'':<20}{'raw':>8}{'lib':>8}{'raw-B':>8}{'lib/raw':>9}  {'lib-only commands':<19}"
        "target: none, lib <= raw",
    ]
    for group in ("stored", "ignored"):
        raw, lib, raw_b = (labels[label][group]["per_task"] for label in ("raw", "lib", "raw-B"))
        extra = ", ".join(figures["lib_only_commands"][group]) or "none"
        fine = extra == "none" and lib <= raw + COMMANDS_TOLERANCE
        lines.append(
            f"   {'results ' + group:<20}{raw:>8.2f}{lib:>8.2f}{raw_b:>8.2f}"
            f"{(ratio(lib, raw) or 0.0):>9.3f}  {extra:<18} {'OK' if fine else 'OVER TARGET'}"
        )
        raw_commands = labels["raw"][group]["commands"]
        lib_commands = labels["lib"][group]["commands"]
        detail = " ".join(
            f"{name}={raw_commands.get(name, 0):g}/{lib_commands.get(name, 0):g}"
            for name in sorted(set(raw_commands) | set(lib_commands))
        )
        lines.append(f"     per command raw/lib: {detail}")
    return lines


def _wallclock_table(results: dict[str, Any]) -> list[str]:
    figures = results["wallclock"]
    sizes = results["sizes"]
    titles = {
        "dispatch": f"dispatch, results ignored ({sizes['dispatches']:,})",
        "dispatch_cpu": "  the same, per CPU-second of dispatcher",
        "throughput_stored": f"end-to-end, results stored ({sizes['tasks']:,})",
        "throughput_ignored": f"end-to-end, results ignored ({sizes['tasks']:,})",
        "rtt_p50": f"round trip p50 ({sizes['rtt']} delay().get())",
        "rtt_p99": f"round trip p99 ({sizes['rtt']} delay().get())",
    }
    lines = [
        "",
        f"3. Wall clock (median of {sizes['rounds']} rounds, label order rotated; prefork worker, "
        "concurrency 2; raw-B is raw again;",
        "   lib's worker on its four queues, the CLI default; raw's on `celery`)",
        f"   {'':<42}{'unit':>12}{'raw':>9}{'lib':>9}{'raw-B':>9}{'lib/raw':>9}{'rawB/raw':>9}",
    ]
    for metric, (unit, _higher) in wallclock.METRICS.items():
        medians = [figures["median"][label][metric] for label in ("raw", "lib", "raw-B")]
        lib_ratio = figures["ratios"]["lib/raw"][metric] or 0.0
        control = figures["ratios"]["rawB/raw"][metric] or 0.0
        lines.append(
            f"   {titles[metric]:<42}{unit:>12}"
            + "".join(f"{value:>9.1f}" for value in medians)
            + f"{lib_ratio:>9.3f}{control:>9.3f}"
        )
    return lines


if __name__ == "__main__":
    main()
