"""The worker's broker transport: kombu's Redis transport, with every message checked on arrival.

A message no producer of this library writes (not JSON, not an envelope, headers that are not an
object, a body Celery cannot unpack, a compressed body that inflates past the bound...) made
kombu or Celery raise inside the worker's event loop: "Unrecoverable error", the worker exited,
and the message, restored from the unacknowledged set, killed the next worker too. Here such a
message is taken off the queue (rejected, not requeued), recorded with the poison records (its
reason, never its body) and logged in one line, and the worker goes on consuming.

``create_app`` makes this the app's ``broker_transport`` for Redis brokers; the transport options
carry the app state's ident, so a refusal is recorded in that app's Redis.
"""

from __future__ import annotations

import bz2
import functools
import logging
import lzma
import zlib
from typing import Any, cast

from kombu.transport import redis as kombu_redis
from kombu.transport.virtual import base

from crawjud_tasks._delivery._poison import record_poison
from crawjud_tasks._state import APP_OPTION, state_for_ident

__all__ = ["GuardedTransport", "MessageRefused", "inflate"]
#: Names of the compression header that Celery and kombu write, with a bounded inflater each.
_INFLATERS = {
    "application/x-gzip": "zlib",
    "application/x-zlib": "zlib",
    "gzip": "zlib",
    "zlib": "zlib",
    "application/x-bz2": "bz2",
    "bzip2": "bz2",
    "application/x-lzma": "lzma",
    "lzma": "lzma",
    "application/x-xz": "lzma",
    "xz": "lzma",
}

_LOG = logging.getLogger("crawjud_tasks.worker")
#: kombu's own methods, called without ``super()`` on the per-message path.
_BASE_BRPOP_READ: Any = vars(kombu_redis.Channel)["_brpop_read"]
_BASE_DELIVER: Any = kombu_redis.Transport._deliver  # pyright: ignore[reportPrivateUsage]  (the method this class extends)


class MessageRefused(Exception):
    """A message that is not a well-formed task message (the reason, never the body)."""


def inflate(body: bytes, compression: str, limit: int) -> bytes:
    """``body`` decompressed, refusing to produce more than ``limit`` bytes."""
    kind = _INFLATERS.get(compression.lower())
    if kind is None:
        msg = f"its body is compressed with {compression!r}, which this worker does not inflate"
        raise MessageRefused(msg)
    try:
        if kind == "zlib":
            inflater = zlib.decompressobj(wbits=47)  # zlib or gzip header, detected
            data = inflater.decompress(body, limit + 1)
        elif kind == "bz2":
            data = bz2.BZ2Decompressor().decompress(body, limit + 1)
        else:
            data = lzma.LZMADecompressor().decompress(body, limit + 1)
    except (zlib.error, OSError, EOFError, lzma.LZMAError) as exc:
        msg = f"its compressed body cannot be inflated ({exc})"
        raise MessageRefused(msg) from None
    if len(data) > limit:
        msg = f"its compressed body inflates past {limit:,} bytes (max_message_bytes)"
        raise MessageRefused(msg)
    return data


class GuardedMessage(base.Message):
    """kombu's message, built only from a well-formed envelope, inflated within the bound.

    Every message a worker takes passes here: the checks are plain type tests and dict lookups
    (JSON decodes to exact ``dict``/``str``/``int``/``float``), with no helper call per field.
    """

    def __init__(self, payload: Any, channel: Any = None, **kwargs: Any) -> None:
        if payload.__class__ is not dict:
            msg = f"the envelope is a JSON {type(payload).__name__}, not an object"
            raise MessageRefused(msg)
        envelope: dict[str, Any] = payload
        properties: Any = envelope.get("properties")
        headers: Any = envelope.get("headers")
        if properties.__class__ is not dict or headers.__class__ is not dict:
            msg = "the envelope's properties and headers must be JSON objects"
            raise MessageRefused(msg)
        if properties.get("delivery_tag").__class__ is not str:
            msg = "the envelope has no delivery tag"
            raise MessageRefused(msg)
        if "task" in headers:
            _check_task_headers(headers)
        limit: int = channel.max_message_bytes if channel is not None else 0
        compression = headers.get("compression")
        if compression and channel is not None:
            body: Any = channel.decode_body(envelope.get("body"), properties.get("body_encoding"))
            if isinstance(body, str):
                body = body.encode("latin-1")
            envelope = {
                **envelope,
                "headers": {k: v for k, v in headers.items() if k != "compression"},
                "properties": {**properties, "body_encoding": None},
                "body": inflate(bytes(body), str(compression), limit),
            }
        super().__init__(envelope, channel=channel, **kwargs)
        if limit:
            decoded: Any = self.body
            kind = decoded.__class__
            size = len(decoded) if kind is bytes or kind is str else 0
            if size > limit:
                msg = f"its body has {size:,} bytes, more than {limit:,} (max_message_bytes)"
                raise MessageRefused(msg)


class GuardedChannel(kombu_redis.Channel):
    """A Redis channel whose deliveries never raise into the worker's event loop."""

    Message = GuardedMessage

    @functools.cached_property
    def max_message_bytes(self) -> int:
        """The bound of a message body (0: none), from the transport options (read once: they
        are fixed when the connection is made)."""
        client: Any = self.connection.client
        return int(client.transport_options.get("max_message_bytes", 0))

    def _brpop_read(self, **options: Any) -> Any:
        try:
            return _BASE_BRPOP_READ(self, **options)
        except (ValueError, TypeError) as exc:
            # The popped item was not JSON (UnicodeDecodeError is a ValueError): it is off the
            # queue already, so only record it.
            transport: Any = self.connection
            transport.refused(None, f"its envelope is not JSON ({type(exc).__name__})")
            return True


class GuardedTransport(kombu_redis.Transport):
    """kombu's Redis transport, delivering through :class:`GuardedChannel`."""

    Channel = GuardedChannel

    def _deliver(self, message: Any, queue: str | None) -> None:
        try:
            _BASE_DELIVER(self, message, queue)
        except MessageRefused as exc:
            self.refused(message, str(exc))
        except Exception as exc:
            # Celery could not take the message as a task (a body it cannot unpack, headers
            # of the wrong types...): it was appended to the unacked set; take it off.
            self._drop(message)
            self.refused(message, f"{type(exc).__name__}: {_first_line(exc)}")

    def _drop(self, message: Any) -> None:
        tag = _field(message, "properties", "delivery_tag")
        if not isinstance(tag, str):
            return
        channels: Any = self.channels or ()
        for channel in channels:
            qos: Any = channel.qos if channel else None
            delivered: Any = getattr(qos, "_delivered", None) or {}  # kombu has no public lookup
            if tag in delivered:
                qos.reject(tag, requeue=False)
                return

    def refused(self, message: Any, reason: str) -> None:
        """Record and log a refused message: its task name and id when it has them, and why."""
        task = _field(message, "headers", "task")
        task_id = _field(message, "headers", "id")
        name = task if isinstance(task, str) else "?"
        ident = task_id if isinstance(task_id, str) else "?"
        _LOG.error(
            "refused a malformed message (task %s, id %s): %s; it is not run, and its body is "
            "not logged",
            name,
            ident,
            reason,
        )
        client: Any = self.client
        app_ident = client.transport_options.get(APP_OPTION)
        state = state_for_ident(app_ident) if isinstance(app_ident, str) else None
        if state is not None:
            try:
                record_poison(state, ident, name, 1, f"refused on arrival: {reason}")
            except Exception as exc:  # never let the record stop the worker
                _LOG.warning("the refused message was not recorded: %s", exc)


#: Task message headers that Celery reads before it runs anything, with the types it needs.
_TEXT_HEADERS = ("task", "id")
_OPTIONAL_TEXT_HEADERS = ("root_id", "parent_id", "group", "eta", "expires", "shadow")
#: The types of a time limit in JSON (``bool`` is not a number here).
_SECONDS = frozenset({int, float, type(None)})
_SOFT_AND_HARD = 2


def _check_task_headers(headers: dict[str, Any]) -> None:
    """Refuse a task message whose headers Celery would choke on (protocol 2).

    Exact type tests: the headers are decoded JSON, so a string is a ``str``, a number an
    ``int`` or a ``float`` (and ``True`` a ``bool``, never taken for a number).
    """
    get = headers.get
    for name in _TEXT_HEADERS:
        if get(name).__class__ is not str:
            msg = f"its header {name!r} is not a string"
            raise MessageRefused(msg)
    for name in _OPTIONAL_TEXT_HEADERS:
        value = get(name)
        if value is not None and value.__class__ is not str:
            msg = f"its header {name!r} is neither a string nor null"
            raise MessageRefused(msg)
    retries = get("retries")
    if retries is not None and retries.__class__ is not int:
        msg = "its header 'retries' is not a whole number"
        raise MessageRefused(msg)
    limits: Any = get("timelimit")
    if limits is not None and not (
        (limits.__class__ is list or limits.__class__ is tuple)
        and len(limits) == _SOFT_AND_HARD
        and limits[0].__class__ in _SECONDS
        and limits[1].__class__ in _SECONDS
    ):
        msg = "its header 'timelimit' is not [soft, hard] seconds (numbers or null)"
        raise MessageRefused(msg)


def _mapping(value: Any) -> dict[str, Any] | None:
    return cast("dict[str, Any]", value) if isinstance(value, dict) else None


def _field(message: Any, section: str, name: str) -> Any:
    envelope = _mapping(message)
    part = _mapping(envelope.get(section)) if envelope is not None else None
    return part.get(name) if part is not None else None


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0][:200] if str(exc) else ""
