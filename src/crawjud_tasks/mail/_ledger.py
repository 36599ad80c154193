"""The sent-ledger: ``<namespace>:mail:sent:<Message-ID>`` holds the receipt of a message the
server (or the outbox) accepted, for ``idempotency_ttl`` seconds.

A message's entry is read just before it is sent and written as soon as it was accepted, before
anything else happens, so a run that dies (or is redelivered) after the server's 250 finds it. In
a bulk send the write of one message and the read of the next ride in one Redis round trip (a
pipeline without a transaction, run in order): the same commands, in the same order, as a write
followed by a read.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import msgspec

from crawjud_tasks._state import app_state
from crawjud_tasks.mail.contracts import EmailReceipt

if TYPE_CHECKING:
    from celery import Celery

__all__ = ["SentLedger"]


class SentLedger:
    """Reads and writes the sent-ledger entries of ``app``'s messages."""

    def __init__(self, app: Celery) -> None:
        state = app_state(app)
        self._state = state
        self._client = state.redis
        self._key = state.keys.mail_sent
        self._ttl = max(1, round(state.settings.idempotency_ttl))

    def get(self, message_id: str) -> EmailReceipt | None:
        """The receipt recorded for ``message_id``, or ``None`` when it was never accepted."""
        with self._state.redis_errors():
            stored: Any = self._client.get(self._key(message_id))
        return _receipt(stored)

    def put(
        self, message_id: str, receipt: EmailReceipt, *, then_get: str | None = None
    ) -> EmailReceipt | None:
        """Record ``receipt`` for ``message_id``; with ``then_get``, read that message's entry
        in the same round trip, after the write, and return it."""
        encoded = msgspec.json.encode(receipt)
        key = self._key(message_id)
        if then_get is None:
            with self._state.redis_errors():
                self._client.set(key, encoded, ex=self._ttl)
            return None
        with (
            self._state.redis_errors(),
            self._client.pipeline(transaction=False) as pipe,  # pyright: ignore[reportUnknownMemberType]  (redis-py leaves shard_hint unannotated)
        ):
            pipe.set(key, encoded, ex=self._ttl)
            pipe.get(self._key(then_get))
            replies: list[Any] = pipe.execute()
        return _receipt(replies[1])


def _receipt(stored: Any) -> EmailReceipt | None:
    if stored is None:
        return None
    return msgspec.convert(json.loads(stored), EmailReceipt)
