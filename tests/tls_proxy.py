"""A TLS-terminating proxy on 127.0.0.1 in front of a test's plain Redis, that records what it
received: a real ``rediss://`` endpoint for tests (the embedded redis-server has no TLS)."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import threading
from types import TracebackType

import trustme

__all__ = ["TlsProxy"]


class TlsProxy:
    """Accepts TLS on a free port of 127.0.0.1 with a certificate of ``ca`` for ``127.0.0.1``,
    and pipes the decrypted bytes to the plain TCP server at ``127.0.0.1:upstream_port``.

    Attributes:
        port: The proxy's port.
        attempts: Connections accepted (before their handshake).
        handshakes: Connections whose TLS handshake succeeded.
        received: Every application byte that clients sent after a handshake (``AUTH`` ...).
    """

    def __init__(self, upstream_port: int, ca: trustme.CA) -> None:
        self.upstream_port = upstream_port
        self._context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("127.0.0.1", "localhost").configure_cert(self._context)
        self.port = 0
        self.attempts = 0
        self.handshakes = 0
        self.received = bytearray()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None

    def start(self) -> TlsProxy:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._listen(), self._loop)
        self.port = future.result(timeout=10)
        return self

    def stop(self) -> None:
        async def close() -> None:
            if self._server is not None:
                self._server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    async def _listen(self) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.attempts += 1
        try:
            await writer.start_tls(self._context, ssl_handshake_timeout=10)
        except (OSError, ssl.SSLError, TimeoutError):
            writer.transport.abort()
            return
        self.handshakes += 1
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        try:
            await asyncio.gather(
                self._pipe(reader, up_writer, record=True), self._pipe(up_reader, writer)
            )
        finally:
            for stream in (writer, up_writer):
                stream.transport.abort()

    async def _pipe(
        self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, *, record: bool = False
    ) -> None:
        with contextlib.suppress(OSError, ssl.SSLError):
            while data := await source.read(65536):
                if record:
                    self.received += data
                sink.write(data)
                await sink.drain()
        sink.transport.abort()

    def __enter__(self) -> TlsProxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
