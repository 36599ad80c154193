"""A worker that keeps consuming after its broker connection drops (Celery 5.7, kombu 5.7).

When the connection to Redis drops while runs are in flight, Celery's consumer collects the
connection (kombu's ``Connection.collect``), then closes it, then reconnects
(``celery/worker/consumer/consumer.py``, ``on_connection_error_after_connected``). ``collect``
releases the transport (``transport.client = None``, ``kombu/connection.py``,
``_do_close_transport``) even when closing the channel failed: Redis was down, so the channel's
pending poll read raised before the channel was marked closed (``kombu/transport/redis.py``,
``Channel.close``). The close that follows, and every acknowledgement of a run delivered on that
channel, then builds a new Redis pool from ``transport.client.hostname`` (``Channel._connparams``)
and raises ``AttributeError: 'NoneType' object has no attribute 'hostname'``, which is not a
connection error: the consumer takes it for an unrecoverable error and stops the worker. The
same AttributeError as kombu issue #582, by another path.

:class:`ReconnectingConsumer` keeps the transport's client through that clean-up: the old channel
still reaches Redis once it is back, so the runs delivered on it are acknowledged, and the
consumer reconnects and goes on consuming. The base of the app's consumer
(:class:`~._consumer.GuardedConsumer`); a worker whose app still names Celery's consumer gets
this one at start-up. A host's own ``worker_consumer`` is left alone.

Imported by the worker only: a host service never loads Celery's worker modules.
"""

from __future__ import annotations

from typing import Any

from celery.worker.consumer import Consumer

__all__ = ["ReconnectingConsumer"]


class ReconnectingConsumer(Consumer):
    """Celery's consumer, whose clean-up after a lost connection leaves its channels usable."""

    def on_connection_error_after_connected(self, exc: Exception) -> None:
        connection: Any = self.connection
        transport: Any = getattr(connection, "_transport", None)  # never make one here
        client: Any = getattr(transport, "client", None)
        if client is None:
            super().on_connection_error_after_connected(exc)
            return
        collect = connection.collect

        def collect_keeping_client(*args: Any, **kwargs: Any) -> None:
            try:
                collect(*args, **kwargs)
            finally:
                transport.client = client

        connection.collect = collect_keeping_client
        try:
            super().on_connection_error_after_connected(exc)
        finally:
            transport.client = client
