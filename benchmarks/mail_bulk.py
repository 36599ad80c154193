"""Mail throughput through a real worker: one ``send_bulk`` task against one task per message.

    PYTHONPATH=src python benchmarks/mail_bulk.py [--messages 1000] [--rounds 3]

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

After each row the SMTP server's count is checked to have grown by exactly N. The ratio is
bulk / each. The issue's target is at least 300 messages/s for ``bulk``.

Both rows include the sent-ledger: before sending, each message's entry
``<namespace>:mail:sent:<Message-ID>`` is read (one GET) and, once the server accepted the
message, written (one SET with the idempotency TTL): two Redis round trips per message, not
pipelined, in both rows.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

from crawjud_tasks import create_app
from crawjud_tasks.mail._templates import example_context
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    n = args.messages
    context = example_context("bot_finished") or {}
    messages = [
        EmailMessage(
            to=[f"user{i}@example.org"], template="bot_finished", locale="pt_BR", context=context
        )
        for i in range(n)
    ]
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

            rows: dict[str, Callable[[], None]] = {"bulk": bulk, "each": each}
            rates: dict[str, list[float]] = {name: [] for name in rows}

            def timed(name: str, run: Callable[[], None]) -> float:
                before = counter.count
                started = time.perf_counter()
                run()
                elapsed = time.perf_counter() - started
                sent = counter.count - before
                if sent != n:
                    msg = f"{name}: the SMTP server counted {sent} messages, not {n}"
                    raise SystemExit(msg)
                return n / elapsed

            pythonpath = os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")]))
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
    print(f"bulk / each: {medians['bulk'] / medians['each']:.2f}")
    verdict = "meets" if medians["bulk"] >= 300 else "misses"
    print(f"bulk {verdict} the issue's target of 300 messages/s")


if __name__ == "__main__":
    main()
