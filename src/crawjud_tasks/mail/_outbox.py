"""The file outbox: each message becomes one ``.eml`` file, written atomically."""

from __future__ import annotations

import email.message
import os
import re
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

from crawjud_tasks.mail._transport import ConnectionScope, SendResult, wire_bytes

__all__ = ["OutboxTransport"]

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class OutboxTransport(ConnectionScope):
    """Writes each message to ``<folder>/<UTC timestamp>-<message id>.eml``, sending nothing.

    The folder is created (mode 0o700) on the first send. A file appears whole or not at all: it
    is written to a temporary file in the same folder, flushed to disk and renamed into place.
    Every recipient counts as accepted; the ``Bcc`` recipients are not in the file.

    Args:
        folder: The outbox folder.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    @property
    def kind(self) -> Literal["outbox"]:
        """Always ``outbox``."""
        return "outbox"

    def open(self) -> None:
        """Nothing to open: files are written one by one."""

    def close(self) -> None:
        """Nothing to close."""

    def send(self, msg: email.message.EmailMessage, recipients: list[str]) -> SendResult:
        """Write ``msg`` as one ``.eml`` file; return every recipient as accepted and the path."""
        message_id = str(msg.get("Message-ID", ""))
        return self.send_bytes(
            wire_bytes(msg), sender="", message_id=message_id, recipients=recipients
        )

    def send_bytes(
        self, data: bytes, *, sender: str, message_id: str, recipients: list[str]
    ) -> SendResult:
        """Write ``data`` as one ``.eml`` file named after ``message_id`` (the envelope is not
        written); return every recipient as accepted and the path."""
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
        safe_id = _UNSAFE.sub("_", message_id.strip("<> ")).strip("._")
        target = self.folder / f"{stamp}-{safe_id[:100] or 'message'}.eml"
        fd, temp = tempfile.mkstemp(dir=self.folder, prefix=".", suffix=".eml.tmp")
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temp, target)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
        return SendResult(accepted=list(recipients), path=str(target))
