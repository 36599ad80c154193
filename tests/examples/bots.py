"""Bots for the tests: each item's side effect is noted in a Redis ledger the tests read.

The ledger (``BOT_LEDGER_URL``, list ``ledger:<run id>``) gets the item's index once ``process``
has done its work, so a test counts how many times each item was processed.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import time

import redis

from crawjud_tasks import FatalBotError, ItemError, RetryPolicy, TransientError
from crawjud_tasks.bots import BaseBot, Item, ItemOutcome, RunContext, bot

_ledger = redis.Redis.from_url(os.environ.get("BOT_LEDGER_URL", "redis://127.0.0.1:1/2"))


def ledger_key(run_id: str) -> str:
    return f"ledger:{run_id}"


@dataclasses.dataclass(frozen=True)
class EchoOptions:
    #: Seconds each item takes.
    delay: float = 0.0
    #: At this row, note the process id in the log and sleep for a minute (to be killed); once
    #: per run, so that the resumed run goes through.
    block_at: int | None = None
    #: Misbehave with the credentials: put them in logs, reasons and data.
    leak: bool = False
    #: A label copied into each success's data.
    label: str = "ok"


@bot("test.echo")
class Echo(BaseBot[EchoOptions]):
    """Columns: ``NUMERO`` (copied) and ``ACTION``: ``fail``, ``boom``, ``fatal``, ``skip`` or
    ``flaky:N`` (N transient errors, then success)."""

    options = EchoOptions
    checkpoint = "each"  # its ledger is an external effect: each item is recorded at once
    retry = RetryPolicy(attempts=4, initial_wait=0.05, multiplier=1.0, max_wait=0.05, jitter=0.0)
    required_columns = ("NUMERO",)

    def setup(self, ctx: RunContext[EchoOptions]) -> None:
        ctx.state["attempts"] = {}
        if ctx.credentials is not None:
            ctx.log.info(f"logged in with {ctx.credentials}")
            if ctx.options.leak:
                ctx.log.warning(f"password is {ctx.credentials.reveal()}")

    def process(self, item: Item, ctx: RunContext[EchoOptions]) -> ItemOutcome:
        options = ctx.options
        if (
            options.block_at is not None
            and item.row == options.block_at
            and _ledger.set(f"blocked:{ctx.run_id}", os.getpid(), nx=True)
        ):
            ctx.log.info(f"blocking in pid {os.getpid()}", row=item.row)
            time.sleep(60)
        if options.delay:
            time.sleep(options.delay)
        action = str(item.get("ACTION") or "")
        leaked = ctx.credentials.reveal() if (options.leak and ctx.credentials) else ""
        if action == "fatal":
            raise FatalBotError(f"the court refused the login {leaked}".strip())
        if action.startswith("flaky:"):
            attempts = ctx.state["attempts"]
            assert isinstance(attempts, dict)
            attempts[item.index] = attempts.get(item.index, 0) + 1
            if attempts[item.index] <= int(action.split(":")[1]):
                raise TransientError(f"court site busy (attempt {attempts[item.index]})")
        _ledger.rpush(ledger_key(ctx.run_id), item.index)
        if action == "fail":
            raise ItemError(f"lawsuit {item['NUMERO']} not found {leaked}".strip())
        if action == "boom":
            raise ValueError(f"unexpected page {leaked}".strip())
        if action == "skip":
            return ItemOutcome.skipped("already up to date")
        data = {"RESULT": f"{options.label}:{item['NUMERO']}"}
        if leaked:
            data["TOKEN"] = leaked
        return ItemOutcome.success(data, message=f"done {item['NUMERO']}")


@bot("test.broken_setup")
class BrokenSetup(BaseBot[None]):
    retry = RetryPolicy.never()

    def setup(self, ctx: RunContext[None]) -> None:
        raise FatalBotError("the court site is down for maintenance")

    def process(self, item: Item, ctx: RunContext[None]) -> ItemOutcome:
        return ItemOutcome.success()


@dataclasses.dataclass(frozen=True)
class FastOptions:
    #: At this row, kill the process running the item, every time (a poison chunk).
    kill_at: int | None = None


@bot("test.fast")
class Fast(BaseBot[FastOptions]):
    """A quick bot of ``checkpoint = "batch"``: notes its process id at setup, and each item's
    index in the ledger (so that items done again show)."""

    options = FastOptions
    retry = RetryPolicy.never()

    def setup(self, ctx: RunContext[FastOptions]) -> None:
        _ledger.rpush(f"pids:{ctx.run_id}", os.getpid())

    def process(self, item: Item, ctx: RunContext[FastOptions]) -> ItemOutcome:
        if item.row == ctx.options.kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        _ledger.rpush(ledger_key(ctx.run_id), item.index)
        if item.index % 7 == 3:
            raise ItemError(f"item {item.index} not found")
        return ItemOutcome.success({"DOUBLE": item.index * 2})


@bot("test.noop")
class Noop(BaseBot[None]):
    """Succeeds at once: the runner's own cost per item."""

    retry = RetryPolicy.never()

    def process(self, item: Item, ctx: RunContext[None]) -> ItemOutcome:
        return ItemOutcome.success()
