"""The worker app of the bot benchmarks (``--app bot_apps:app``): three bots and one plain task.

Settings come from ``CRAWJUD_TASKS_*`` (the benchmark hands its ``Settings.to_env()``).

- ``bench.noop``: ``process`` returns ``ItemOutcome.success()`` (no data, no sleep).
- ``bench.wide``: the same, with a data dict of 5 columns (about 150 bytes of text), the size of
  a realistic record.
- ``bench.sleepy``: each item sleeps ``delay`` seconds; ``setup`` logs ``pid <pid>`` (the pool
  process running it), which the resume benchmark reads to know whom to kill.
- ``crawjud.bots.bench_loop``: a plain ``@app.task`` that reads the same input file with the
  library's reader and calls the same bot's ``process`` on every item: no checkpoint, no event,
  no state, no report. It is the "bookkeeping off" row, run by the same worker.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from pathlib import Path
from typing import Any

from crawjud_tasks import RetryPolicy, create_app
from crawjud_tasks._state import app_state
from crawjud_tasks.bots import BaseBot, Item, ItemOutcome, RunContext, RunLog, bot
from crawjud_tasks.bots._inputs import read_items
from crawjud_tasks.bots._registry import find_bot
from crawjud_tasks.bots.contracts import BotInput, BotParameters

app = create_app()


@bot("bench.noop")
class Noop(BaseBot[None]):
    """Does nothing with each item."""

    retry = RetryPolicy.never()

    def process(self, item: Item, ctx: RunContext[None]) -> ItemOutcome:
        return ItemOutcome.success()


@bot("bench.wide")
class Wide(BaseBot[None]):
    """Returns five columns per item, about what a court-site scraper brings back."""

    retry = RetryPolicy.never()

    def process(self, item: Item, ctx: RunContext[None]) -> ItemOutcome:
        number = item["NUMERO"]
        return ItemOutcome.success(
            {
                "VARA": "3a Vara Civel do Foro Central da Comarca de Sao Paulo",
                "VALOR": "R$ 12.345,67",
                "SITUACAO": "Em andamento",
                "ULTIMA_MOVIMENTACAO": "2026-03-01T14:30:00",
                "PROCESSO": f"{number}-56.2024.8.26.0100",
            }
        )


@dataclasses.dataclass(frozen=True)
class SleepyOptions:
    #: Seconds each item sleeps.
    delay: float = 0.002


@bot("bench.sleepy")
class Sleepy(BaseBot[SleepyOptions]):
    """Sleeps ``delay`` per item; logs its process id once per delivery (in ``setup``)."""

    options = SleepyOptions
    retry = RetryPolicy.never()

    def setup(self, ctx: RunContext[SleepyOptions]) -> None:
        ctx.log.info(f"pid {os.getpid()}")

    def process(self, item: Item, ctx: RunContext[SleepyOptions]) -> ItemOutcome:
        time.sleep(ctx.options.delay)
        return ItemOutcome.success()


@app.task(name="crawjud.bots.bench_loop")
def bench_loop(bot_id: str, path: str) -> dict[str, Any]:
    """The bot's ``process`` over the file's items, without any of the run's bookkeeping.

    Returns the seconds spent reading the input and looping, and the items seen.
    """
    settings = app_state(app).settings.bots
    started = time.perf_counter()
    items = read_items(
        BotInput.from_file(path),
        roots=settings.allowed_roots,
        max_inline_rows=settings.max_inline_rows,
    )
    read = time.perf_counter()
    instance: Any = find_bot(app, bot_id)()
    ctx: RunContext[Any] = RunContext(
        run_id="bench-loop",
        bot_id=bot_id,
        user_id=0,
        parameters=BotParameters(input=BotInput.from_file(path)),
        options=None,
        secrets={},
        output_dir=Path(os.devnull),
        log=RunLog(lambda level, message, row: None),
        cancel=threading.Event(),
        resumed_at=0,
    )
    succeeded = 0
    loop = time.perf_counter()
    for item in items:
        outcome = instance.process(item, ctx)
        succeeded += outcome.status == "succeeded"
    done = time.perf_counter()
    return {"read": read - started, "loop": done - loop, "items": len(items), "ok": succeeded}
