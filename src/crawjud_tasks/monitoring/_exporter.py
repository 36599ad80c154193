"""The Prometheus exporter: one read of Redis per scrape, the text written directly
(:mod:`crawjud_tasks.monitoring._exposition`).

Stateless: any number of exporters (or the host's own web server, through
:func:`metrics_wsgi_app` / :func:`metrics_asgi_app`) answer the same. A scraper that accepts gzip
gets the text compressed (hundreds of series compress about twentyfold).
"""

from __future__ import annotations

import asyncio
import gzip
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from crawjud_tasks.errors import BrokerUnavailableError
from crawjud_tasks.monitoring._exposition import CONTENT_TYPE, down, render
from crawjud_tasks.monitoring._snapshot import read_snapshot

if TYPE_CHECKING:
    from celery import Celery

__all__ = ["metrics_asgi_app", "metrics_wsgi_app", "render_metrics", "serve_metrics"]

logger = logging.getLogger("crawjud_tasks.monitoring")


def render_metrics(app: Celery) -> bytes:
    """The exposition text of ``app``'s metrics (one read of Redis).

    Raises:
        BrokerUnavailableError: Redis did not answer.
    """
    return render(read_snapshot(app))


def _answer(app: Celery, accept_encoding: str) -> tuple[int, list[tuple[str, str]], bytes]:
    """Status, headers and body of one scrape."""
    try:
        status, body = 200, render_metrics(app)
    except BrokerUnavailableError as exc:
        logger.warning("monitoring: scrape failed: %s", exc)
        status, body = 503, down()
    headers = [("Content-Type", CONTENT_TYPE)]
    if "gzip" in accept_encoding:
        body = gzip.compress(body, compresslevel=1)
        headers.append(("Content-Encoding", "gzip"))
    headers.append(("Content-Length", str(len(body))))
    return status, headers, body


_REASONS = {200: "200 OK", 503: "503 Service Unavailable"}
WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], list[bytes]]


def metrics_wsgi_app(app: Celery) -> WSGIApp:
    """A WSGI app that answers every request with ``app``'s metrics (HTTP 503 if Redis is down)."""

    def wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        status, headers, body = _answer(app, str(environ.get("HTTP_ACCEPT_ENCODING", "")))
        start_response(_REASONS[status], headers)
        return [body]

    return wsgi


def metrics_asgi_app(app: Celery) -> Callable[..., Any]:
    """An ASGI app that answers every HTTP request with ``app``'s metrics (Redis read in a thread).

    Other scopes (``lifespan``, websockets) are left alone: the app returns without answering.
    """

    async def asgi(
        scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]
    ) -> None:
        if scope.get("type") != "http":
            return
        accept = b", ".join(
            value for name, value in scope.get("headers", ()) if name.lower() == b"accept-encoding"
        )
        status, headers, body = await asyncio.to_thread(_answer, app, accept.decode("latin-1"))
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(k.lower().encode(), v.encode()) for k, v in headers],
            }
        )
        await send({"type": "http.response.body", "body": body})

    return asgi


def serve_metrics(app: Celery, *, host: str = "0.0.0.0", port: int = 9808) -> None:  # noqa: S104  (an exporter listens for Prometheus)
    """Serve ``app``'s metrics over HTTP until interrupted."""
    from socketserver import ThreadingMixIn  # noqa: PLC0415
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server  # noqa: PLC0415

    class _Server(ThreadingMixIn, WSGIServer):
        daemon_threads = True

    class _Quiet(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = make_server(host, port, metrics_wsgi_app(app), _Server, _Quiet)
    try:
        server.serve_forever()
    finally:
        server.server_close()
