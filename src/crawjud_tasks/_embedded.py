"""The embedded Redis: a real redis-server in the data folder, shared by every local process.

With no broker configured, :func:`~crawjud_tasks.create_app` starts it, or attaches to it when a
worker, a host process or the CLI already did. It listens on a unix socket only (no TCP port),
keeps an append-only file so nothing queued is lost across a restart, and runs detached until
``crawjud-tasks embedded stop``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import subprocess
import time
from collections.abc import Generator
from pathlib import Path

import redis

from crawjud_tasks._redis_server import find_redis_server, wait_for_redis
from crawjud_tasks.errors import EmbeddedRedisError

__all__ = ["EmbeddedRedis", "EmbeddedStatus"]

#: The longest unix socket path that every platform accepts (sun_path is 104 bytes on macOS).
_MAX_SOCKET_PATH = 103


@dataclasses.dataclass(frozen=True, slots=True)
class EmbeddedStatus:
    """What :meth:`EmbeddedRedis.status` saw."""

    running: bool
    socket: Path
    pid: int | None = None
    version: str | None = None
    keys: int | None = None
    #: ``True`` when this call started the server, ``False`` when it attached to a running one.
    started: bool = False


class EmbeddedRedis:
    """The embedded redis-server whose files live in ``<data_dir>/redis``.

    Args:
        data_dir: The crawjud-tasks data folder.
    """

    def __init__(self, data_dir: Path) -> None:
        self.directory = Path(data_dir).expanduser().absolute() / "redis"
        self.socket_path = self.directory / "redis.sock"
        self.pidfile = self.directory / "redis.pid"
        self.logfile = self.directory / "redis.log"

    def url(self, db: int = 0) -> str:
        """The URL of database ``db`` over the unix socket (for broker and result backend)."""
        return f"redis+socket://{self.socket_path}?virtual_host={db}"

    def client(self, db: int = 0, *, timeout: float = 5.0) -> redis.Redis:
        """A redis-py client on the socket."""
        return redis.Redis(unix_socket_path=str(self.socket_path), db=db, socket_timeout=timeout)

    def status(self) -> EmbeddedStatus:
        """Whether the server answers, and its pid, version and key count."""
        if not self.socket_path.exists():
            return EmbeddedStatus(running=False, socket=self.socket_path, pid=self._pid())
        client = self.client(timeout=2.0)
        try:
            info = client.info("server")  # pyright: ignore[reportUnknownMemberType]  (redis-py leaves **kwargs unannotated)
            keys = sum(
                int(db["keys"])
                for name, db in client.info("keyspace").items()  # pyright: ignore[reportUnknownMemberType]  (redis-py leaves **kwargs unannotated)
                if name.startswith("db")
            )
        except (redis.ConnectionError, redis.TimeoutError, OSError):
            return EmbeddedStatus(running=False, socket=self.socket_path, pid=self._pid())
        finally:
            client.close()
        return EmbeddedStatus(
            running=True,
            socket=self.socket_path,
            pid=int(info["process_id"]),
            version=str(info["redis_version"]),
            keys=keys,
        )

    def start(self, timeout: float = 10.0) -> EmbeddedStatus:
        """Start the server, or attach to it if it already runs; wait until it answers.

        Two processes that call this at once get one server: a file lock serialises them.

        Raises:
            EmbeddedRedisError: no binary, a data path too long for a socket, or a server that
                did not come up (the message quotes its log).
        """
        self._check_path()
        with self._lock():
            status = self.status()
            if status.running:
                return status
            binary = find_redis_server()
            with contextlib.suppress(FileNotFoundError):
                self.socket_path.unlink()  # stale socket of a server that died
            args = [
                str(binary),
                "--daemonize", "yes",
                "--port", "0",
                "--unixsocket", str(self.socket_path),
                "--unixsocketperm", "700",
                "--dir", str(self.directory),
                "--pidfile", str(self.pidfile),
                "--logfile", str(self.logfile),
                "--save", "",
                "--appendonly", "yes",
                "--appendfsync", "everysec",
            ]  # fmt: skip
            result = subprocess.run(args, capture_output=True, timeout=timeout, check=False)
            client = self.client()
            try:
                up = result.returncode == 0 and wait_for_redis(client, timeout=timeout)
            finally:
                client.close()
            if not up:
                log = (
                    self.logfile.read_text(errors="replace")[-600:] if self.logfile.exists() else ""
                )
                detail = (log or result.stderr.decode(errors="replace")).strip()
                msg = f"the embedded redis-server in {self.directory} did not start: {detail!r}"
                raise EmbeddedRedisError(msg)
            return dataclasses.replace(self.status(), started=True)

    def stop(self, timeout: float = 10.0) -> bool:
        """Stop the server (its append-only file is flushed first); ``False`` if it was not running.

        Raises:
            EmbeddedRedisError: the server did not stop within ``timeout`` seconds.
        """
        with self._lock():
            pid = self.status().pid
            if pid is None or not _alive(pid):
                return False
            os.kill(pid, signal.SIGTERM)  # redis-server flushes its append-only file, then exits
            deadline = time.monotonic() + timeout
            while _alive(pid):
                if time.monotonic() >= deadline:
                    msg = f"the embedded redis-server (pid {pid}) did not stop within {timeout} s"
                    raise EmbeddedRedisError(msg)
                time.sleep(0.02)
            with contextlib.suppress(FileNotFoundError):
                self.socket_path.unlink()
            return True

    def _pid(self) -> int | None:
        try:
            pid = int(self.pidfile.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        return pid if _alive(pid) else None

    def _check_path(self) -> None:
        length = len(os.fsencode(self.socket_path))
        if length > _MAX_SOCKET_PATH:
            msg = (
                f"the embedded Redis socket path {self.socket_path} is {length} bytes, longer than "
                f"unix sockets allow ({_MAX_SOCKET_PATH}); "
                "set CRAWJUD_TASKS_DATA_DIR to a shorter folder"
            )
            raise EmbeddedRedisError(msg)

    @contextlib.contextmanager
    def _lock(self) -> Generator[None, None, None]:
        import fcntl  # noqa: PLC0415  (POSIX only, like the embedded server: hosts elsewhere still import)

        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        with (self.directory / "lock").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs; a zombie (exited, not yet reaped by its parent) counts as gone."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # no /proc (macOS): signal 0 is all there is to go on
        return True
    return stat.rpartition(")")[2].split()[0] != "Z"
