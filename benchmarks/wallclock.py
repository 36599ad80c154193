"""Wall-clock figures: dispatch rate, end-to-end throughput and round-trip latency.

Each (round, label) is one *session*: a fresh ``python wallclock.py session ...`` process that
starts its own prefork worker subprocess (concurrency 2) on the label's databases, measures, and
stops it. Labels are ``raw``, ``lib`` and ``raw-B`` (raw Celery again: the A/A control that shows
the noise floor); their order rotates from round to round.

In a session, with the worker running:

- ``throughput_stored``: dispatch M stored-result tasks, then ``get()`` each; M / elapsed.
- ``throughput_ignored``: dispatch M results-ignored tasks, then one stored-result task and its
  ``get()`` (queues are FIFO); the worker's ``inspect().stats()`` confirms all M ran. M / elapsed.
- ``rtt``: R sequential ``delay().get()`` of the stored-result task; p50 and p99 in ms.

Then, with the worker stopped (so that it does not compete for the CPU):

- ``dispatch``: N ``apply_async()`` calls of the results-ignored task in a row; N / elapsed. (The
  stored-result dispatch differs by one SUBSCRIBE; its cost is in the callgrind figures.)
- ``dispatch_cpu``: the same N divided by the CPU time of the dispatching process, which other
  processes on the machine disturb less than the wall time.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from celery import Celery

from apps import make_app, senders, spec_for
from common import (
    BENCH_DIR,
    DATABASES,
    LABELS,
    WorkerSubprocess,
    child_env,
    flush,
    median,
    percentile,
    python,
    ratio,
)

__all__ = ["METRICS", "run_rounds", "session"]

#: metric -> (unit, higher is better)
METRICS = {
    "dispatch": ("tasks/s", True),
    "dispatch_cpu": ("tasks/cpu-s", True),
    "throughput_stored": ("tasks/s", True),
    "throughput_ignored": ("tasks/s", True),
    "rtt_p50": ("ms", False),
    "rtt_p99": ("ms", False),
}
WARMUP = 100


def session(
    kind: str, broker: str, backend: str, *, dispatches: int, tasks: int, rtt: int
) -> dict[str, float]:
    """Measure one label; see the module docstring."""
    spec = spec_for(kind)
    flush(broker, backend)
    app = make_app(kind, broker, backend)
    stored, ignored = senders(kind, app)
    out: dict[str, float] = {}
    with WorkerSubprocess(app, spec, broker, backend) as worker:
        for result in [stored() for _ in range(WARMUP)]:
            result.get(timeout=60)
        for _ in range(WARMUP):
            ignored()
        _wait_executed(app, worker.nodename, spec.ignored, WARMUP)

        started = time.perf_counter()
        results = [stored() for _ in range(tasks)]
        for result in results:
            result.get(timeout=300)
        out["throughput_stored"] = tasks / (time.perf_counter() - started)

        started = time.perf_counter()
        for _ in range(tasks):
            ignored()
        stored().get(timeout=300)
        _wait_executed(app, worker.nodename, spec.ignored, WARMUP + tasks)
        out["throughput_ignored"] = tasks / (time.perf_counter() - started)

        for _ in range(20):
            stored().get(timeout=30)
        samples = []
        for _ in range(rtt):
            sent = time.perf_counter()
            stored().get(timeout=30)
            samples.append((time.perf_counter() - sent) * 1000)
        out["rtt_p50"] = percentile(samples, 50)
        out["rtt_p99"] = percentile(samples, 99)

    for _ in range(WARMUP):
        ignored()
    started, cpu = time.perf_counter(), time.process_time()
    for _ in range(dispatches):
        ignored()
    out["dispatch"] = dispatches / (time.perf_counter() - started)
    out["dispatch_cpu"] = dispatches / (time.process_time() - cpu)
    app.close()
    flush(broker, backend)  # the dispatched messages were never consumed
    return out


def _wait_executed(app: Celery, node: str, name: str, count: int, timeout: float = 120) -> None:
    """Wait until the worker ``node`` has run ``name`` ``count`` times."""
    deadline = time.monotonic() + timeout
    while True:
        replies = app.control.inspect(destination=[node], timeout=2.0, limit=1).stats() or {}
        done = replies.get(node, {}).get("total", {}).get(name, 0)
        if done >= count:
            return
        if time.monotonic() > deadline:
            msg = f"{node} ran {name} {done} times, expected {count}"
            raise RuntimeError(msg)
        time.sleep(0.01)


def run_rounds(
    server_url: str, *, rounds: int, dispatches: int, tasks: int, rtt: int, log: Any = print
) -> dict[str, Any]:
    """Run ``rounds`` rounds of the three labels in rotating order; medians and ratios."""
    base = server_url.rsplit("/", 1)[0]
    labels = list(LABELS)
    per_round: list[dict[str, dict[str, float]]] = []
    for number in range(rounds):
        order = labels[number % len(labels) :] + labels[: number % len(labels)]
        figures: dict[str, dict[str, float]] = {}
        for label in order:
            broker, backend = (f"{base}/{db}" for db in DATABASES[label])
            flush(broker, backend)
            started = time.monotonic()
            figures[label] = _session_process(label, broker, backend, dispatches, tasks, rtt)
            flush(broker, backend)
            log(f"  round {number + 1}/{rounds} {label:<5} {_brief(figures[label])} "
                f"({time.monotonic() - started:.0f} s)")  # fmt: skip
        per_round.append(figures)
    medians = {
        label: {metric: median([r[label][metric] for r in per_round]) for metric in METRICS}
        for label in labels
    }
    ratios = {
        name: {metric: ratio(medians[label][metric], medians["raw"][metric]) for metric in METRICS}
        for name, label in (("lib/raw", "lib"), ("rawB/raw", "raw-B"))
    }
    return {"rounds": per_round, "median": medians, "ratios": ratios}


def _brief(figures: dict[str, float]) -> str:
    return " ".join(f"{metric}={value:.1f}" for metric, value in figures.items())


def _session_process(
    label: str, broker: str, backend: str, dispatches: int, tasks: int, rtt: int
) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="cjb-wc-") as tmp:
        out = Path(tmp) / "figures.json"
        command = [
            python(), str(Path(__file__).resolve()), "session", "--kind", LABELS[label],
            "--broker", broker, "--backend", backend, "--dispatches", str(dispatches),
            "--tasks", str(tasks), "--rtt", str(rtt), "--out", str(out),
        ]  # fmt: skip
        run = subprocess.run(
            command, env=child_env(), cwd=BENCH_DIR, capture_output=True, text=True, check=False
        )
        if run.returncode != 0 or not out.exists():
            msg = f"wall-clock session {label} failed ({run.returncode}):\n{run.stderr[-3000:]}"
            raise RuntimeError(msg)
        figures: dict[str, float] = json.loads(out.read_text())
        return figures


def main() -> None:
    parser = argparse.ArgumentParser(description="One wall-clock session (used by run.py).")
    parser.add_argument("command", choices=("session",))
    parser.add_argument("--kind", choices=("raw", "lib"), required=True)
    parser.add_argument("--broker", required=True)
    parser.add_argument("--backend", required=True)
    parser.add_argument("--dispatches", type=int, default=10_000)
    parser.add_argument("--tasks", type=int, default=1_000)
    parser.add_argument("--rtt", type=int, default=500)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    figures = session(
        args.kind, args.broker, args.backend,
        dispatches=args.dispatches, tasks=args.tasks, rtt=args.rtt,
    )  # fmt: skip
    args.out.write_text(json.dumps(figures))


if __name__ == "__main__":
    main()
