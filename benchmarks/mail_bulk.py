"""Mail throughput through a real worker: one ``send_bulk`` task against one task per message.

    PYTHONPATH=src python benchmarks/mail_bulk.py [--messages 1000] [--rounds 3] [--only bulk,raw]

One throwaway Redis server on 127.0.0.1 (broker and results), one aiosmtpd ``Controller`` on
127.0.0.1 and a free port whose handler only counts the messages it accepts (no parsing, no
storage), mail settings ``host=127.0.0.1``, ``security=none`` (plain SMTP, no TLS, no login), and
ONE worker subprocess (``WorkerProcess``, pool ``solo``: one task at a time, in the worker's main
process) that imports this checkout's code (``PYTHONPATH``, inherited by the child). The
messages are N ``bot_finished`` messages in pt_BR with the template's example context, each to
its own recipient (``user<i>@example.org``), without idempotency keys (each message's key is the
task's id and the message's index, so no round sees another round's ledger entries). Rows, each
run once per round in interleaved order after one untimed warm-up of each, reported as the
median rate in messages per second, from the first dispatch to the last result received:

- ``bulk``: ``send_bulk.using(app).delay(messages).get()``: one task, one SMTP connection for
  all N messages (render, check and build all first, then send one by one).
- ``each``: N ``send_email`` tasks (``send_email.using(app).delay(message)`` N times, then
  ``.get()`` on each result): per message a broker round trip, a result stored and read, and
  its own SMTP connection (connect, EHLO, MAIL/RCPT/DATA, QUIT).

- ``raw``: the server's ceiling, no library in the loop: a child process (as the worker is)
  writes the same N messages to bytes first (untimed), then sends them over one connection with
  ``smtplib``'s ``sendmail`` (MAIL, RCPT, DATA a message: aiosmtpd does not offer PIPELINING) and
  reports its own sending time. No render, no checks, no Redis, no task.

After each row the SMTP server's count is checked to have grown by exactly N. The ratio is
bulk / each. The issue's target is at least 300 messages/s for ``bulk``.

``bulk`` and ``each`` include the sent-ledger: each message's entry
``<namespace>:mail:sent:<Message-ID>`` is read before it is sent and, once the server accepted
it, written (SET with the idempotency TTL); in ``bulk`` the write and the next message's read
share one Redis round trip.
"""

from __future__ import annotations

import argparse
import os
import shutil
import smtplib
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

from crawjud_tasks import MailSettings, Settings, create_app
from crawjud_tasks.mail._message import check_message, parse_address
from crawjud_tasks.mail._templates import example_context, render
from crawjud_tasks.mail._wire import WireWriter
from crawjud_tasks.mail.contracts import EmailMessage, send_bulk, send_email
from crawjud_tasks.testing import RedisServer, WorkerProcess, close_app, settings_for

TIMEOUT = 600.0
#: This checkout's sources, first on the worker's PYTHONPATH (the venv may hold another checkout).
SRC = Path(__file__).resolve().parent.parent / "src"


class Counter:
    """An SMTP handler that only counts the messages it accepts."""

    def __init__(self) -> None:
        self.count = 0
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            self.count += 1
        return "250 OK"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def bench_messages(n: int) -> list[EmailMessage]:
    context = example_context("bot_finished") or {}
    return [
        EmailMessage(
            to=[f"user{i}@example.org"], template="bot_finished", locale="pt_BR", context=context
        )
        for i in range(n)
    ]


def raw_client(port: int, n: int) -> None:
    """The ``raw`` row's child: write the N messages to bytes, then time sending them."""
    settings = Settings(mail=MailSettings(host="127.0.0.1", port=port, security="none"))
    sender = parse_address("sender", settings.mail.sender)
    writer = WireWriter()
    prepared: list[tuple[str, bytes]] = []
    for i, message in enumerate(bench_messages(n)):
        assert message.template is not None
        rendered = render(settings.mail, message.template, message.context, message.locale)
        checked = check_message(
            message,
            subject=rendered.subject,
            html=rendered.html,
            text=rendered.text,
            sender=sender,
            attachment_roots=(),
            message_id=f"<raw{i}@example.org>",
        )
        prepared.append((message.to[0], writer.write(checked)))
    with smtplib.SMTP("127.0.0.1", port, timeout=TIMEOUT) as connection:
        connection.ehlo()
        started = time.perf_counter()
        for recipient, data in prepared:
            connection.sendmail(sender.addr_spec, [recipient], data)
        elapsed = time.perf_counter() - started
    print(elapsed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", default="bulk,each,raw", help="rows, comma-separated")
    parser.add_argument("--raw-client", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    n = args.messages
    if args.raw_client is not None:
        raw_client(args.raw_client, n)
        return
    messages = bench_messages(n)
    counter = Counter()
    port = free_port()
    controller = Controller(counter, hostname="127.0.0.1", port=port)
    controller.start()
    data_dir = Path(tempfile.mkdtemp(prefix="cjt-mail-"))
    try:
        with RedisServer() as server:
            settings = settings_for(
                server,
                data_dir,
                mail={"host": "127.0.0.1", "port": port, "security": "none"},
            )
            app = create_app(settings)
            bulk_ref = send_bulk.using(app)
            each_ref = send_email.using(app)

            def bulk() -> None:
                receipts = bulk_ref.delay(messages).get(timeout=TIMEOUT)
                assert len(receipts) == n

            def each() -> None:
                results = [each_ref.delay(message) for message in messages]
                for result in results:
                    result.get(timeout=TIMEOUT)

            pythonpath = os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")]))
            child_env = {**os.environ, "PYTHONPATH": pythonpath}

            def raw() -> float:
                command = [
                    sys.executable,
                    __file__,
                    "--raw-client",
                    str(port),
                    "--messages",
                    str(n),
                ]
                done = subprocess.run(
                    command, check=True, capture_output=True, text=True, env=child_env
                )
                return float(done.stdout.split()[-1])

            every: dict[str, Callable[[], float | None]] = {"bulk": bulk, "each": each, "raw": raw}
            rows = {name: every[name] for name in args.only.split(",")}
            rates: dict[str, list[float]] = {name: [] for name in rows}

            def timed(name: str, run: Callable[[], float | None]) -> float:
                before = counter.count
                started = time.perf_counter()
                own = run()
                elapsed = time.perf_counter() - started if own is None else own
                sent = counter.count - before
                if sent != n:
                    msg = f"{name}: the SMTP server counted {sent} messages, not {n}"
                    raise SystemExit(msg)
                return n / elapsed

            worker = WorkerProcess(
                app, settings=settings, pool="solo", env={"PYTHONPATH": pythonpath}
            )
            with worker:
                for name, run in rows.items():  # warm-up: imports, template compile, pools
                    timed(name, run)
                for _ in range(args.rounds):
                    for name, run in rows.items():
                        rates[name].append(timed(name, run))
            close_app(app)
    finally:
        controller.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
    medians = {name: statistics.median(values) for name, values in rates.items()}
    print(
        f"{n} bot_finished (pt_BR) messages to SMTP on loopback, one solo worker, "
        f"median of {args.rounds} rounds"
    )
    print(f"{'':8}{'messages/s':>12}   rounds")
    for name, values in rates.items():
        rounds = ", ".join(f"{value:,.0f}" for value in values)
        print(f"{name:8}{medians[name]:12,.0f}   {rounds}")
    if "bulk" in medians and "each" in medians:
        print(f"bulk / each: {medians['bulk'] / medians['each']:.2f}")
    if "bulk" in medians and "raw" in medians:
        print(f"bulk / raw (the server's ceiling): {medians['bulk'] / medians['raw']:.2f}")
    if "bulk" in medians:
        verdict = "meets" if medians["bulk"] >= 300 else "misses"
        print(f"bulk {verdict} the issue's target of 300 messages/s")


if __name__ == "__main__":
    main()
