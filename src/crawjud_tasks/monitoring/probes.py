"""Health probes: read the worker's health record (standard library only: no Celery, no Redis)
and beat's heartbeat key.

Live: the record is fresh (the worker process writes it), its event loop is fresh whenever the
broker is connected, and it is not stalled (messages wait, slots are free, nothing was received
for ``stall_timeout``). Ready: live, and the broker answered within ``health_timeout``. A broker
that is down makes a worker not ready but still live: restarting it cannot fix the broker.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from celery import Celery

__all__ = ["HealthReport", "beat_health", "check_record", "worker_health"]


@dataclasses.dataclass(frozen=True, slots=True)
class HealthReport:
    """A probe's answer: ``ok``, and why not."""

    ok: bool
    reasons: tuple[str, ...]


def check_record(record: dict[str, Any], check: Literal["live", "ready"], now: float) -> list[str]:
    """What makes one worker record fail ``check`` (empty: it passes)."""
    timeout = float(record.get("health_timeout", 30.0))
    node = record.get("node", "?")
    problems: list[str] = []
    written = float(record.get("written", 0.0))
    if now - written > timeout:
        problems.append(f"{node}: health record is {now - written:.0f} s old (worker gone or hung)")
        return problems
    if record.get("connected") and now - float(record.get("loop", 0.0)) > timeout:
        problems.append(f"{node}: event loop blocked for {now - float(record['loop']):.0f} s")
    if record.get("stalled"):
        problems.append(f"{node}: stalled (messages waiting, free slots, nothing received)")
    if not record.get("pool_alive"):
        problems.append(f"{node}: no pool process alive")
    if check == "ready" and not problems:
        trip = record.get("last_round_trip")
        if not record.get("connected") or trip is None or now - float(trip) > timeout:
            problems.append(f"{node}: broker not connected")
    return problems


def worker_health(
    directory: Path, *, check: Literal["live", "ready"] = "live", node: str | None = None
) -> HealthReport:
    """Check the health record of worker ``node`` (default: every record in ``directory``)."""
    pattern = f"worker-{node}.json" if node else "worker-*.json"
    paths = sorted(directory.glob(pattern))
    if not paths:
        return HealthReport(False, (f"no worker health record in {directory}",))
    now = time.time()
    problems: list[str] = []
    for path in paths:
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            problems.append(f"{path.name}: unreadable ({exc})")
            continue
        problems.extend(check_record(record, check, now))
    return HealthReport(not problems, tuple(problems))


def beat_health(app: Celery) -> HealthReport:
    """Whether beat wrote its heartbeat within ``health_timeout`` (the key expires after it)."""
    from crawjud_tasks._state import app_state  # noqa: PLC0415  (the worker probe imports no Redis)

    state = app_state(app)
    settings = state.settings
    with state.redis_errors():
        raw: Any = state.redis.get(state.keys.beat_heartbeat())
    if raw is None:
        return HealthReport(False, ("no beat heartbeat: beat is not running, or hung",))
    age = time.time() - float(json.loads(raw)["time"])
    if age > settings.monitoring.health_timeout:
        return HealthReport(False, (f"beat heartbeat is {age:.0f} s old",))
    return HealthReport(True, ())
