"""Instructions per dispatch and per executed task, counted by ``valgrind --tool=callgrind``.

Every job runs ``cg_driver.py`` under callgrind on its own pair of Redis databases, two jobs at a
time. A job reports, for its stored-result and its results-ignored group, the instructions of
each measured segment divided by the tasks in it; the figure is the median over the segments
and ``spread`` is (max - min) / median across them.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from apps import LIB_QUEUE, RAW_FOUR_QUEUES
from common import BENCH_DIR, child_env, flush, median, python

__all__ = ["JOBS", "Job", "call_diff", "callgrind_job", "find_job", "run_jobs"]

DRIVER = BENCH_DIR / "cg_driver.py"
_TOTALS = re.compile(rb"^(?:totals|summary):\s*(\d+)", re.MULTILINE)


@dataclass(frozen=True)
class Job:
    """One callgrind run: ``mode`` (dispatch or execute) of ``kind``."""

    mode: str
    kind: str
    #: Key of the result: ``kind``, or ``kind-4q`` for a worker on four queues.
    name: str
    extra: tuple[str, ...] = ()


#: The library's worker on the one queue its tasks are routed to, as raw Celery's on ``celery``.
LIB_ONE_QUEUE = ("--queues", LIB_QUEUE)
#: Raw Celery's worker on four queues, as the library's consumes its four by default.
RAW_FOUR = ("--queues", ",".join(RAW_FOUR_QUEUES))

#: Every job of a run, two at a time in this order. ``execute`` ``raw``/``lib``: each worker on
#: the one queue its tasks go to (the headline); ``raw-4q``/``lib-4q``: each on four queues (the
#: library's is its default, what ``crawjud-tasks worker`` consumes).
JOBS = (
    Job("dispatch", "raw", "raw"),
    Job("dispatch", "lib", "lib"),
    Job("execute", "raw", "raw"),
    Job("execute", "lib", "lib", LIB_ONE_QUEUE),
    Job("execute", "raw", "raw-4q", RAW_FOUR),
    Job("execute", "lib", "lib-4q"),
)


def find_job(mode: str, name: str) -> Job:
    """The job of ``JOBS`` that measures ``name`` in ``mode``."""
    return next(one for one in JOBS if (one.mode, one.name) == (mode, name))


def run_jobs(
    server_url: str,
    jobs: Sequence[Job],
    *,
    warmup: int,
    segments: int,
    per_segment: int,
    keep_dir: Path | None,
    parallel: int = 2,
) -> dict[str, dict[str, dict[str, Any]]]:
    """Run ``jobs`` and return ``{mode: {name: {group: {"per_task", "spread", ...}}}}``.

    The queues the worker consumed are under ``"queues"`` of each group (empty for dispatch).
    """
    if shutil.which("valgrind") is None:
        msg = "valgrind is not installed (apt-get install valgrind)"
        raise RuntimeError(msg)
    sizes = ["--warmup", str(warmup), "--segments", str(segments)]
    sizes += ["--per-segment", str(per_segment)]

    def one(index: int, job: Job) -> tuple[Job, dict[str, Any]]:
        base = server_url.rsplit("/", 1)[0]
        broker, backend = f"{base}/{2 * index}", f"{base}/{2 * index + 1}"
        flush(broker, backend)
        urls = ["--kind", job.kind, "--broker", broker, "--backend", backend]
        if job.mode == "execute":
            _run_quietly([python(), str(DRIVER), "publish", *urls, *sizes, *job.extra])
        try:
            return job, _callgrind(job, [*urls, *sizes, *job.extra], per_segment, keep_dir)
        finally:
            flush(broker, backend)

    with ThreadPoolExecutor(max_workers=parallel) as pool:
        done = list(pool.map(lambda pair: one(*pair), enumerate(jobs)))
    results: dict[str, dict[str, dict[str, Any]]] = {}
    for job, groups in done:
        results.setdefault(job.mode, {})[job.name] = groups
    return results


def _callgrind(
    job: Job,
    args: list[str],
    per_segment: int,
    keep_dir: Path | None,
    extra_env: dict[str, str] | None = None,
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="cjb-cg-") as tmp:
        out = Path(tmp) / "cg.out"
        labels_file = Path(tmp) / "labels.json"
        command = [
            "valgrind", "--tool=callgrind", "--dump-before=sched_yield",
            f"--callgrind-out-file={out}",
            python(), str(DRIVER), job.mode, *args, "--out", str(labels_file),
        ]  # fmt: skip
        env = child_env() | {"PYTHONHASHSEED": "0"} | (extra_env or {})
        run = subprocess.run(
            command, env=env, cwd=BENCH_DIR, capture_output=True, text=True, check=False
        )
        if run.returncode != 0 or not labels_file.exists():
            msg = f"callgrind {job} failed ({run.returncode}):\n{run.stderr[-3000:]}"
            raise RuntimeError(msg)
        written = json.loads(labels_file.read_text())
        labels: list[str] = written["labels"]
        queues: list[str] = written["queues"]
        # Part i (1-based) holds what ran before marker i-1 (0-based), i.e. segment labels[i-1].
        per_group: dict[str, list[float]] = {}
        for index, label in enumerate(labels, start=1):
            part = Path(f"{out}.{index}")
            if label.startswith("warmup-"):
                continue
            per_group.setdefault(label, []).append(_total(part) / per_segment)
            if keep_dir is not None and len(per_group[label]) == 1:
                keep_dir.mkdir(parents=True, exist_ok=True)
                shutil.copy(part, keep_dir / f"{job.mode}-{job.name}-{label}.callgrind.out")
    return {
        group: {
            "per_task": median(values),
            "spread": (max(values) - min(values)) / median(values),
            "segments": values,
            "queues": queues,  # execute: the queues the worker consumed
        }
        for group, values in per_group.items()
    }


callgrind_job = _callgrind


def _total(path: Path) -> int:
    match = _TOTALS.search(path.read_bytes())
    if match is None:
        msg = f"no totals in {path}"
        raise RuntimeError(msg)
    return int(match.group(1))


def call_diff(
    server_url: str,
    reference: Job,
    measured: Job,
    *,
    warmup: int,
    segments: int,
    per_segment: int,
    top: int = 12,
) -> dict[str, list[dict[str, Any]]]:
    """Python calls per task that differ between two jobs (cProfile, natively).

    Returns ``{group: [{"function", "reference", "measured", "diff"}, ...]}``, where ``diff`` is
    measured - reference, largest differences first; the first row is the total of all calls.
    """
    sizes = ["--warmup", str(warmup), "--segments", str(segments)]
    sizes += ["--per-segment", str(per_segment)]
    counted: list[dict[str, dict[str, int]]] = []
    base = server_url.rsplit("/", 1)[0]
    for index, one in enumerate((reference, measured)):
        broker, backend = f"{base}/{2 * index}", f"{base}/{2 * index + 1}"
        flush(broker, backend)
        urls = ["--kind", one.kind, "--broker", broker, "--backend", backend]
        with tempfile.TemporaryDirectory(prefix="cjb-calls-") as tmp:
            out = Path(tmp) / "calls.json"
            if one.mode == "execute":
                _run_quietly([python(), str(DRIVER), "publish", *urls, *sizes])
            command = [python(), str(DRIVER), one.mode, *urls, *sizes, *one.extra]
            _run_quietly([*command, "--profile-out", str(out)])
            counted.append(json.loads(out.read_text()))
        flush(broker, backend)
    tasks = segments * per_segment
    report: dict[str, list[dict[str, Any]]] = {}
    for group in ("stored", "ignored"):
        before, after = counted[0][group], counted[1][group]
        rows = [
            {
                "function": _anonymous(name),
                "reference": before.get(name, 0) / tasks,
                "measured": after.get(name, 0) / tasks,
                "diff": (after.get(name, 0) - before.get(name, 0)) / tasks,
            }
            for name in _merge_names(before, after)
        ]
        rows = [row for row in rows if abs(row["diff"]) >= 0.05]
        rows.sort(key=lambda row: -abs(row["diff"]))
        total = {"function": "ALL PYTHON CALLS", "reference": sum(before.values()) / tasks}
        total |= {"measured": sum(after.values()) / tasks}
        total["diff"] = total["measured"] - total["reference"]
        report[group] = [total, *rows[:top]]
    return report


def _run_quietly(command: list[str]) -> None:
    """Run a driver natively; its output (Celery's warnings) only shows when it fails."""
    run = subprocess.run(
        command, env=child_env(), cwd=BENCH_DIR, capture_output=True, text=True, check=False
    )
    if run.returncode != 0:
        msg = f"{shlex.join(command)} failed ({run.returncode}):\n{run.stderr[-3000:]}"
        raise RuntimeError(msg)


def _anonymous(name: str) -> str:
    """``name`` without memory addresses, which differ between processes."""
    return re.sub(r" at 0x[0-9a-f]+", "", name)


def _merge_names(raw: dict[str, int], lib: dict[str, int]) -> list[str]:
    """All names, with entries that differ only by address merged (counts summed in place)."""
    for counts in (raw, lib):
        merged: dict[str, int] = {}
        for name, count in counts.items():
            key = _anonymous(name)
            merged[key] = merged.get(key, 0) + count
        counts.clear()
        counts.update(merged)
    return sorted(set(raw) | set(lib))
