"""The worker's health record and beat's heartbeat, written by a thread in each process.

Every ``health_interval`` seconds the worker's main process asks the broker for the length of
each queue it consumes (one pipelined round trip, which also proves the broker answers) and
writes ``<health_dir>/worker-<node>.json`` atomically. A timer on the consumer's event loop
stamps ``loop`` so that a blocked loop shows. :mod:`crawjud_tasks.monitoring.probes` reads the
record without importing Celery.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crawjud_tasks._state import app_settings, app_state
from crawjud_tasks.monitoring._collect import metrics_state
from crawjud_tasks.monitoring._queues import queue_lengths

if TYPE_CHECKING:
    from celery import Celery

__all__ = ["health_dir", "start_beat_heartbeat", "start_health_writer", "stop_health_writer"]

logger = logging.getLogger("crawjud_tasks.monitoring")
_stop = threading.Event()
_threads: list[threading.Thread] = []


def health_dir(app: Celery) -> Path:
    """Where ``app``'s workers write their health records."""
    settings = app_settings(app)
    return settings.monitoring.health_dir or settings.resolved_data_dir / "health"


class _WorkerHealth:
    def __init__(self, consumer: Any) -> None:
        self.consumer = consumer
        self.app: Celery = consumer.app
        self.settings = app_settings(self.app).monitoring
        self.node = str(consumer.hostname)
        self.path = health_dir(self.app) / f"worker-{self.node}.json"
        self.started = time.time()
        self.loop = time.time()
        self.last_round_trip: float | None = None
        self.queues = sorted(
            {str(queue.name) for queue in self.app.amqp.queues.consume_from.values()}
        )
        self.failing = False

    def beat_loop(self) -> None:
        self.loop = time.time()

    def run(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        timer = getattr(self.consumer, "timer", None)
        if timer is not None:
            timer.call_repeatedly(self.settings.health_interval, self.beat_loop)
        while True:
            try:
                self.write()
            except Exception as exc:
                if not self.failing:
                    logger.warning("monitoring: health record not written: %r", exc)
                self.failing = True
            else:
                self.failing = False
            if _stop.wait(self.settings.health_interval):
                break
        self.path.unlink(missing_ok=True)

    def write(self) -> None:
        now = time.time()
        queued: int | None = None
        client = app_state(self.app).link.broker
        try:
            if client is not None:
                queued = sum(length for length, _ in queue_lengths(client, self.queues).values())
                self.last_round_trip = time.time()
        except Exception:
            queued = None
        connection = getattr(self.consumer, "connection", None)
        connected = bool(connection is not None and connection.connected and queued is not None)
        state = metrics_state(self.app)
        last_received = state.recorder.last_received if state is not None else None
        from celery.worker import state as worker_state  # noqa: PLC0415

        active = len(worker_state.active_requests)
        pool = getattr(self.consumer, "pool", None)
        concurrency = int(getattr(pool, "limit", None) or self.consumer.controller.concurrency or 1)
        alive = _pool_alive(pool, concurrency)
        free = max(concurrency - active, 0)
        idle_since = max(last_received or 0.0, self.started)
        stalled = bool(queued) and free > 0 and now - idle_since > self.settings.stall_timeout
        record = {
            "node": self.node,
            "pid": os.getpid(),
            "written": now,
            "loop": self.loop,
            "connected": connected,
            "last_round_trip": self.last_round_trip,
            "last_received": last_received,
            "queued": queued,
            "active": active,
            "concurrency": concurrency,
            "pool_alive": alive,
            "stalled": stalled,
            "health_timeout": self.settings.health_timeout,
        }
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(record), encoding="utf-8")
        os.replace(tmp, self.path)


def _pool_alive(pool: Any, concurrency: int) -> int:
    inner = getattr(getattr(pool, "_pool", None), "_pool", None)
    if inner is None:
        return concurrency  # solo and thread pools run in this process
    return sum(1 for process in list(inner) if process.is_alive())


def start_health_writer(consumer: Any) -> None:
    """Start writing the worker's health record (at ``worker_ready``)."""
    writer = _WorkerHealth(consumer)
    _stop.clear()
    thread = threading.Thread(target=writer.run, name="crawjud-health", daemon=True)
    _threads.append(thread)
    thread.start()


def stop_health_writer() -> None:
    """Stop the health writer and remove the record (at ``worker_shutdown``)."""
    _stop.set()
    for thread in _threads:
        thread.join(timeout=5)
    _threads.clear()


def start_beat_heartbeat(app: Celery) -> None:
    """Write beat's heartbeat key every ``health_interval`` seconds (at ``beat_init``)."""
    state = app_state(app)
    settings = state.settings
    key = state.keys.beat_heartbeat()
    interval = settings.monitoring.health_interval
    ttl = max(int(settings.monitoring.health_timeout), 1)

    def run() -> None:
        while True:
            record = json.dumps({"time": time.time(), "pid": os.getpid()})
            try:
                state.redis.set(key, record, ex=ttl)
            except Exception as exc:
                logger.debug("monitoring: beat heartbeat not written: %r", exc)
            if _stop.wait(interval):
                break

    threading.Thread(target=run, name="crawjud-beat-heartbeat", daemon=True).start()
