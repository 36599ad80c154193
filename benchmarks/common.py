"""Helpers shared by the benchmark modules: paths, environment, worker subprocesses, statistics."""

from __future__ import annotations

import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import redis
from celery import Celery

from apps import BACKEND_ENV, BROKER_ENV, AppSpec

__all__ = [
    "BENCH_DIR",
    "DATABASES",
    "LABELS",
    "WorkerSubprocess",
    "child_env",
    "flush",
    "median",
    "percentile",
    "python",
    "ratio",
]

BENCH_DIR = Path(__file__).resolve().parent

#: label -> kind; ``raw-B`` is raw Celery again, the A/A control that shows the noise floor.
LABELS = {"raw": "raw", "lib": "lib", "raw-B": "raw"}
#: Each label has its own pair of databases (broker, results) on the one Redis server.
DATABASES = {"raw": (0, 1), "lib": (2, 3), "raw-B": (4, 5)}


def child_env(broker_url: str | None = None, result_backend: str | None = None) -> dict[str, str]:
    """The environment of a benchmark child process: ``apps`` importable, no CRAWJUD_TASKS_*."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("CRAWJUD_TASKS_")}
    env["PYTHONPATH"] = os.pathsep.join(
        [str(BENCH_DIR), *filter(None, [os.environ.get("PYTHONPATH")])]
    )
    if broker_url is not None:
        env[BROKER_ENV] = broker_url
    if result_backend is not None:
        env[BACKEND_ENV] = result_backend
    return env


def flush(*urls: str) -> None:
    """``FLUSHDB`` the databases of ``urls``."""
    for url in urls:
        client = redis.Redis.from_url(url)
        try:
            client.flushdb()
        finally:
            client.close()


class WorkerSubprocess:
    """A ``worker`` subprocess of either kind, with the same Celery options for both.

    ``--without-heartbeat`` (with mingle and gossip off, as crawjud-tasks' own worker helper does)
    keeps the worker's Redis traffic per task, not per second.
    """

    def __init__(
        self,
        app: Celery,
        spec: AppSpec,
        broker_url: str,
        result_backend: str,
        *,
        pool: str = "prefork",
        concurrency: int = 2,
    ) -> None:
        self.app = app
        self.nodename = f"bench-{spec.kind}-{uuid.uuid4().hex[:6]}@localhost"
        self.command = [
            *spec.worker_command,
            "--pool", pool, "--concurrency", str(concurrency), "--loglevel", "WARNING",
            "--hostname", self.nodename,
            "--without-mingle", "--without-gossip", "--without-heartbeat",
        ]  # fmt: skip
        self.env = child_env(broker_url, result_backend)
        handle, log_path = tempfile.mkstemp(prefix="cjb-worker-", suffix=".log")
        os.close(handle)
        self.log_path = Path(log_path)
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> WorkerSubprocess:
        """Start the worker and wait until it answers a control ping."""
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                self.command,
                cwd=BENCH_DIR,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self._process.poll() is None:
            if self.app.control.ping(destination=[self.nodename], timeout=0.25):
                return self
        text = self.log_path.read_text(errors="replace")[-2000:]
        self.stop(timeout=5)
        msg = f"worker {self.nodename} did not start: {text}"
        raise RuntimeError(msg)

    def stop(self, timeout: float = 30.0) -> None:
        """Warm shutdown (SIGTERM), then SIGKILL of the whole process group after ``timeout``."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        with contextlib.suppress(OSError):
            self.log_path.unlink()

    def __enter__(self) -> WorkerSubprocess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def median(values: Sequence[float]) -> float:
    """The median of ``values``."""
    return float(statistics.median(values))


def percentile(values: Sequence[float], pct: float) -> float:
    """The ``pct`` percentile of ``values`` (nearest rank)."""
    ordered = sorted(values)
    rank = max(1, round(pct / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def ratio(value: float | None, reference: float | None) -> float | None:
    """``value / reference``, or ``None`` when either is missing or the reference is zero."""
    if value is None or reference is None or reference == 0:
        return None
    return value / reference


def python() -> str:
    """The interpreter running the benchmarks (children use the same one)."""
    return sys.executable
