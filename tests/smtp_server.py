"""A real SMTP server on loopback (aiosmtpd) for the tests: it keeps what it receives."""

from __future__ import annotations

import email
import email.policy
import socket
import threading
from collections.abc import Iterator
from email.message import EmailMessage as MimeMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller

__all__ = ["Recorder", "smtp", "start_smtp"]


class Recorder:
    """An SMTP handler that keeps what it received and answers as told."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], bytes]] = []
        self.connections = 0
        #: Replies to give instead of 250 to the next DATA commands, in order.
        self.next_replies: list[str] = []
        self.lock = threading.Lock()

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        with self.lock:
            self.connections += 1
        session.host_name = hostname
        return responses

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            if self.next_replies:
                return self.next_replies.pop(0)
            self.messages.append((list(envelope.rcpt_tos), bytes(envelope.content)))
        return "250 OK"

    def parsed(self) -> list[MimeMessage]:
        return [
            email.message_from_bytes(raw, policy=email.policy.default)  # type: ignore[misc]  # the default policy gives EmailMessage
            for _, raw in self.messages
        ]


def start_smtp(handler: Any) -> tuple[Controller, int]:
    """Start an aiosmtpd server for ``handler`` on a free loopback port; stop it when done."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    return controller, port


@pytest.fixture
def smtp() -> Iterator[tuple[Recorder, int]]:
    recorder = Recorder()
    controller, port = start_smtp(recorder)
    yield recorder, port
    controller.stop()
