"""The process that ``callgrind.py`` runs under ``valgrind --tool=callgrind``.

Each measured segment ends with a call of ``os.sched_yield()``; callgrind runs with
``--dump-before=sched_yield``, so it writes one profile per segment, holding exactly the
instructions executed since the previous marker. Start-up, imports and warm-up fall into
segments that are not reported, so nothing but the steady-state work is counted.

``dispatch``: ``apply_async()`` of the stored-result task, then of the results-ignored one.
``execute``: an in-process solo-pool worker consumes the messages ``callgrind.py`` published
beforehand (stored-result tasks, then results-ignored ones) and stops after the last one.

The labels of the markers, in order, are written as JSON to ``--out``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
from pathlib import Path

from celery.worker import state

from apps import make_app, spec_for

GROUPS = ("stored", "ignored")


class Markers:
    """Calls the marker and remembers the label of each segment it closes."""

    def __init__(self) -> None:
        self.labels: list[str] = []

    def mark(self, label: str) -> None:
        self.labels.append(label)
        os.sched_yield()


def dispatch(args: argparse.Namespace, markers: Markers) -> None:
    app = make_app(args.kind, args.broker, args.backend)
    spec = spec_for(args.kind, "python")
    for group, name in zip(GROUPS, (spec.stored, spec.ignored), strict=True):
        task = app.tasks[name]
        for _ in range(args.warmup):
            task.apply_async()
        settle()
        markers.mark(f"warmup-{group}")
        for _ in range(args.segments):
            for _ in range(args.per_segment):
                task.apply_async()
            markers.mark(group)


def execute(args: argparse.Namespace, markers: Markers) -> None:
    counts = dict.fromkeys(GROUPS, 0)
    last = args.warmup + args.segments * args.per_segment

    def body_for(group: str):  # noqa: ANN202
        def body() -> None:
            count = counts[group] = counts[group] + 1
            if count == args.warmup:
                settle()
                markers.mark(f"warmup-{group}")
            elif count > args.warmup and (count - args.warmup) % args.per_segment == 0:
                markers.mark(group)
                if count == last and group == GROUPS[-1]:
                    state.should_stop = 0  # the worker's loop stops before the next message

        return body

    app = make_app(
        args.kind,
        args.broker,
        args.backend,
        stored_body=body_for("stored"),
        ignored_body=body_for("ignored"),
    )
    worker = app.Worker(
        pool="solo",
        concurrency=1,
        hostname=f"callgrind-{args.kind}@localhost",
        without_mingle=True,
        without_gossip=True,
        without_heartbeat=True,
        loglevel="WARNING",
        quiet=True,
        redirect_stdouts=False,
    )
    worker.start()
    if counts != dict.fromkeys(GROUPS, last):
        msg = f"the worker ran {counts}, expected {last} of each"
        raise RuntimeError(msg)


def settle() -> None:
    """Collect garbage, then freeze what survives (see docs/benchmarks.md, "Method")."""
    gc.collect()
    gc.freeze()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("mode", choices=("dispatch", "execute"))
    parser.add_argument("--kind", choices=("raw", "lib"), required=True)
    parser.add_argument("--broker", required=True)
    parser.add_argument("--backend", required=True)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--segments", type=int, default=3)
    parser.add_argument("--per-segment", type=int, default=100)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    markers = Markers()
    (dispatch if args.mode == "dispatch" else execute)(args, markers)
    args.out.write_text(json.dumps({"labels": markers.labels}))


if __name__ == "__main__":
    main()
