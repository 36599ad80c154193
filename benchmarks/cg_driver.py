"""The process that ``callgrind.py`` runs under ``valgrind --tool=callgrind``.

Each measured segment ends with a call of ``os.sched_yield()``; callgrind runs with
``--dump-before=sched_yield``, so it writes one profile per segment, holding exactly the
instructions executed since the previous marker. Start-up, imports and warm-up fall into
segments that are not reported, so only steady-state work is counted.

Modes:

- ``dispatch``: sending the stored-result task, then the results-ignored one (raw Celery:
  ``apply_async()``; the library: its contracts' ``delay()``).
- ``publish`` (run natively, before ``execute``): puts the messages ``execute`` will consume.
- ``execute``: an in-process solo-pool worker consumes those messages (stored-result tasks,
  then results-ignored ones) and stops after the last one. It consumes the queues given with
  ``--queues``, or by default every queue of the app (for the library, its four); the names
  of the queues it consumed are written to ``--out`` too.

The labels of the markers, in order, are written as JSON to ``--out``. With ``--profile-out``
(run natively, not under valgrind) the Python calls made in the measured segments of each group
are counted with cProfile instead, to tell where two apps' costs differ.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import os
import pstats
from collections.abc import Callable
from pathlib import Path

from celery import Celery
from celery.worker import state

from apps import make_app, senders

GROUPS = ("stored", "ignored")


class Markers:
    """Ends segments: calls the marker and remembers the label of the segment it closes."""

    def __init__(self, *, profile: bool) -> None:
        self.labels: list[str] = []
        #: execute: the queues the worker consumed.
        self.queues: list[str] = []
        self.profile = profile
        self.calls: dict[str, dict[str, int]] = {}
        self._profiler: cProfile.Profile | None = None

    def mark(self, label: str) -> None:
        self.labels.append(label)
        if self.profile:
            self._profile(label)
        else:
            os.sched_yield()

    def _profile(self, label: str) -> None:
        if self._profiler is not None:
            self._profiler.disable()
        if label.startswith("warmup-"):
            self._profiler = cProfile.Profile()
            self.calls[label.removeprefix("warmup-")] = {}
            self._profiler.enable()
            return
        if self._profiler is not None:
            counts = self.calls[label]
            for (path, line, name), row in pstats.Stats(self._profiler).stats.items():
                key = f"{_short(path)}:{line}({name})"
                counts[key] = counts.get(key, 0) + row[1]
            self._profiler = cProfile.Profile()
            self._profiler.enable()


def _short(path: str) -> str:
    """A file path without its site-packages (or standard library) folder."""
    for marker in ("site-packages/", "/lib/python3."):
        if marker in path:
            path = path.split(marker, 1)[1]
            return path if marker == "site-packages/" else "stdlib" + path[path.find("/") :]
    return path


def build(args: argparse.Namespace, **bodies: Callable[[], None]) -> Celery:
    """The app of ``args.kind``."""
    return make_app(args.kind, args.broker, args.backend, **bodies)


def dispatch(args: argparse.Namespace, markers: Markers) -> None:
    app = build(args)
    for group, send in zip(GROUPS, senders(args.kind, app), strict=True):
        for _ in range(args.warmup):
            send()
        settle()
        markers.mark(f"warmup-{group}")
        for _ in range(args.segments):
            for _ in range(args.per_segment):
                send()
            markers.mark(group)


def publish(args: argparse.Namespace) -> None:
    app = build(args)
    total = args.warmup + args.segments * args.per_segment
    for send in senders(args.kind, app):
        for _ in range(total):
            send()
    app.close()


def execute(args: argparse.Namespace, markers: Markers) -> None:
    counts = dict.fromkeys(GROUPS, 0)
    last = args.warmup + args.segments * args.per_segment

    def body_for(group: str) -> Callable[[], None]:
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

    app = build(args, stored_body=body_for("stored"), ignored_body=body_for("ignored"))
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
        queues=args.queues.split(",") if args.queues else None,
    )
    queues = app.amqp.queues
    markers.queues = sorted(queues.consume_from or queues)
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
    parser.add_argument("mode", choices=("dispatch", "publish", "execute"))
    parser.add_argument("--kind", choices=("raw", "lib"), required=True)
    parser.add_argument("--broker", required=True)
    parser.add_argument("--backend", required=True)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--segments", type=int, default=3)
    parser.add_argument("--per-segment", type=int, default=100)
    parser.add_argument("--queues", help="execute: consume only these queues (comma-separated)")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--profile-out", type=Path, help="count Python calls instead (native)")
    args = parser.parse_args()
    if args.mode == "publish":
        publish(args)
        return
    markers = Markers(profile=args.profile_out is not None)
    (dispatch if args.mode == "dispatch" else execute)(args, markers)
    if args.out is not None:
        args.out.write_text(json.dumps({"labels": markers.labels, "queues": markers.queues}))
    if args.profile_out is not None:
        args.profile_out.write_text(json.dumps(markers.calls))


if __name__ == "__main__":
    main()
