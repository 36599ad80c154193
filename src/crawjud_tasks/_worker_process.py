"""A real Celery worker in a child process, which can be stopped gracefully or killed.

The demo runs one; the pytest plugin (:mod:`crawjud_tasks.testing`) hands them to tests, so that
hosts test their own bots through the same worker code that runs in production.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from types import TracebackType

import redis
from celery import Celery
from kombu.exceptions import OperationalError

from crawjud_tasks._retry import retry_waits_enabled
from crawjud_tasks._settings import ENV_PREFIX, RETRY_WAITS_ENV, Settings
from crawjud_tasks.errors import CrawjudTasksError

__all__ = ["WorkerProcess"]

_BROKER_ERRORS = (OperationalError, redis.ConnectionError, redis.TimeoutError, OSError)


class WorkerProcess:
    """A ``crawjud-tasks worker`` child process.

    Args:
        app: The app the caller dispatches with; used to tell when the worker is ready.
        settings: Settings handed to the worker through ``CRAWJUD_TASKS_*`` variables, with
            or without ``app_spec``.
        app_spec: ``module:attribute`` of the host's app, for hosts with their own tasks. Its
            app must take its settings from the environment (``create_app()`` with no
            config, or ``Settings.from_env()``) to use ``settings``.
        queues: Queues to consume (default: the app's queues).
        pool: Celery pool (``solo``, ``prefork`` or ``threads``).
        concurrency: Worker concurrency.
        loglevel: Worker log level.
        env: Extra environment variables for the child.

    The child's environment is this process's without its ``CRAWJUD_TASKS_*`` variables, plus
    the settings, plus ``CRAWJUD_TASKS_RETRY_WAITS=0`` when retry waits are off here
    (:func:`crawjud_tasks.testing.retry_waits`) as this object is created, plus ``env``.
    """

    def __init__(
        self,
        app: Celery,
        *,
        settings: Settings | None = None,
        app_spec: str | None = None,
        queues: list[str] | None = None,
        pool: str = "solo",
        concurrency: int = 1,
        loglevel: str = "WARNING",
        env: dict[str, str] | None = None,
    ) -> None:
        self.app = app
        self.nodename = f"crawjud-{uuid.uuid4().hex[:8]}@{socket.gethostname()}"
        command = [sys.executable, "-m", "crawjud_tasks"]
        if app_spec is not None:
            command += ["--app", app_spec]
        command += [
            "worker", "--pool", pool, "--concurrency", str(concurrency),
            "--loglevel", loglevel, "--hostname", self.nodename,
            "--without-mingle", "--without-gossip",
        ]  # fmt: skip
        if queues:
            command += ["--queues", ",".join(queues)]
        self.command = command
        # Settings come from ``settings`` only, never from the caller's environment; process
        # switches follow this process's state.
        self.env = {
            key: value for key, value in os.environ.items() if not key.startswith(ENV_PREFIX)
        }
        if not retry_waits_enabled():
            self.env[RETRY_WAITS_ENV] = "0"
        if settings is not None:
            # With an ``app_spec`` too: a host's app made from the environment (``create_app()``)
            # must reach the test's Redis, never the embedded one in the user's data folder.
            self.env.update(settings.to_env())
        self.env.update(env or {})
        handle, log_path = tempfile.mkstemp(prefix="crawjud-worker-", suffix=".log")
        os.close(handle)
        self.log_path = Path(log_path)
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        """The worker's main process id, while it runs."""
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        """Whether the worker's main process is alive."""
        return self._process is not None and self._process.poll() is None

    def output(self) -> str:
        """What the worker has logged so far."""
        return self.log_path.read_text(errors="replace")

    def start(self, timeout: float = 30.0) -> WorkerProcess:
        """Start the worker and wait until it answers a control ping.

        Raises:
            CrawjudTasksError: the worker exited or did not answer within ``timeout`` seconds;
                the message quotes the end of its log.
        """
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                self.command,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: kill() reaches pool children
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running:
                break
            try:
                replies = self.app.control.ping(destination=[self.nodename], timeout=0.25)
            except _BROKER_ERRORS:
                # A pooled broker connection that the server closed (a restarted Redis) fails
                # once and is reconnected on the next attempt.
                continue
            if replies:
                return self
        self.kill()
        msg = f"the worker {self.nodename} did not start: {self.output()[-1500:].strip()}"
        raise CrawjudTasksError(msg)

    def stop(self, timeout: float = 20.0) -> int | None:
        """Warm shutdown (SIGTERM: running tasks finish); kill after ``timeout``. The exit code."""
        process = self._process
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return process.returncode

    def kill(self) -> None:
        """Kill the worker and its pool children at once (SIGKILL), as a crash would."""
        process = self._process
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()

    def __enter__(self) -> WorkerProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
        with contextlib.suppress(OSError):
            self.log_path.unlink()
