"""Redis commands per task, from the server's own counters.

For each label, a prefork worker subprocess (concurrency 2) runs N no-op tasks dispatched by
this process, first with results stored (N sequential ``delay().get()``), then with results
ignored (dispatch all, then wait until the queue and the unacked hash are empty).

``get()`` reads the result key once before it waits, and once more each time it checks a result
that has not arrived yet; round trips one at a time make that exactly two GETs per task. (Were
all results dispatched first and collected later, most would be there at the first read, and
the count would drift towards one GET per task with the timing.) Around each
batch ``INFO commandstats`` and ``INFO stats`` are read; the INFO calls themselves, and the
LLEN/HLEN polls of the results-ignored wait, are taken off. Per-command counts show any
command the library sends and neither raw Celery run (raw, raw-B) does.
"""

from __future__ import annotations

import time
from typing import Any

import redis

from apps import make_app, senders, spec_for
from common import DATABASES, LABELS, WorkerSubprocess, flush

__all__ = ["measure"]

WARMUP = 50


class Counters:
    """Reads the server's command counters, and counts the commands it sends itself."""

    def __init__(self, url: str) -> None:
        self.client = redis.Redis.from_url(url)
        self.client.ping()  # connect (and CLIENT SETINFO) before the first reading
        self.own: dict[str, int] = {}

    def read(self) -> dict[str, int]:
        """Calls per command name, and ``_total`` (total_commands_processed)."""
        stats: dict[str, Any] = self.client.info("commandstats")
        calls = {key.removeprefix("cmdstat_"): int(value["calls"]) for key, value in stats.items()}
        calls["_total"] = int(self.client.info("stats")["total_commands_processed"])
        return calls

    def poll(self, command: str, *args: Any) -> int:
        """Send ``command`` and remember it, so that it can be taken off."""
        self.own[command.lower()] = self.own.get(command.lower(), 0) + 1
        return int(self.client.execute_command(command, *args))

    def difference(self, before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
        """Commands sent by others between two readings (INFO and own polls taken off)."""
        diff = {name: after.get(name, 0) - before.get(name, 0) for name in after}
        # After "before" was taken: its INFO stats call, then this reading's INFO commandstats.
        diff["_total"] -= 2 + sum(self.own.values())
        diff.pop("info", None)
        for name, count in self.own.items():
            diff[name] -= count
        self.own.clear()
        return {name: count for name, count in diff.items() if count}

    def close(self) -> None:
        self.client.close()


def measure(server_url: str, *, tasks: int, log: Any = print) -> dict[str, Any]:
    """Commands per task for each label and each of stored / ignored results."""
    base = server_url.rsplit("/", 1)[0]
    figures: dict[str, dict[str, Any]] = {}
    for label, kind in LABELS.items():
        broker, backend = (f"{base}/{db}" for db in DATABASES[label])
        flush(broker, backend)
        figures[label] = _one(kind, broker, backend, tasks)
        flush(broker, backend)
        log(f"  {label:<5} stored {figures[label]['stored']['per_task']:.2f}, "
            f"ignored {figures[label]['ignored']['per_task']:.2f} commands per task")  # fmt: skip
    # Against both raw runs: kombu's timers (the sweep for unacknowledged messages to restore,
    # every 10 s) send a few commands now and then, which one window catches and another not.
    extra = {
        group: sorted(
            name
            for name in figures["lib"][group]["commands"]
            if all(name not in figures[label][group]["commands"] for label in ("raw", "raw-B"))
        )
        for group in ("stored", "ignored")
    }
    return {"labels": figures, "lib_only_commands": extra}


def _one(kind: str, broker: str, backend: str, tasks: int) -> dict[str, Any]:
    spec = spec_for(kind)
    app = make_app(kind, broker, backend)
    stored, ignored = senders(kind, app)
    counters = Counters(broker)
    out: dict[str, Any] = {}
    try:
        with WorkerSubprocess(app, spec, broker, backend):
            for result in [stored() for _ in range(WARMUP)]:
                result.get(timeout=60)
            for _ in range(WARMUP):
                ignored()
            _drained(counters, spec.queue_key, spec.unacked_key)
            counters.own.clear()

            before = counters.read()
            for _ in range(tasks):
                stored().get(timeout=30)
            out["stored"] = _per_task(counters.difference(before, counters.read()), tasks)

            before = counters.read()
            for _ in range(tasks):
                ignored()
            _drained(counters, spec.queue_key, spec.unacked_key)
            out["ignored"] = _per_task(counters.difference(before, counters.read()), tasks)
    finally:
        counters.close()
        app.close()
    return out


def _drained(counters: Counters, queue_key: str, unacked_key: str, timeout: float = 120) -> None:
    """Wait until every message was taken and acknowledged, twice in a row 0.3 s apart.

    A message popped but not yet recorded as unacknowledged is in neither key for an instant;
    the second look, 0.3 s later, covers that.
    """
    deadline = time.monotonic() + timeout
    quiet = 0
    while quiet < 2:
        empty = counters.poll("LLEN", queue_key) == 0 and counters.poll("HLEN", unacked_key) == 0
        quiet = quiet + 1 if empty else 0
        if time.monotonic() > deadline:
            msg = f"{queue_key} did not drain in {timeout} s"
            raise RuntimeError(msg)
        time.sleep(0.3 if empty else 0.02)


def _per_task(diff: dict[str, int], tasks: int) -> dict[str, Any]:
    total = diff.pop("_total", 0)
    return {
        "per_task": total / tasks,
        "per_task_commandstats": sum(diff.values()) / tasks,
        "commands": {name: count / tasks for name, count in sorted(diff.items())},
    }
