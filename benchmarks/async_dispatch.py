"""What an awaitable dispatch costs an asyncio host, and what it spares its event loop.

    PYTHONPATH=src python benchmarks/async_dispatch.py [--count 500]

One throwaway Redis server on 127.0.0.1; no worker (only the publish is measured). Inside one
event loop, a 1 ms ticker runs while ``count`` dispatches are made one after the other, first
with ``contract.delay`` called on the loop (blocking it), then with ``await contract.adelay``
(the publish in a thread, ``asyncio.to_thread``). Printed per way: the time per dispatch (mean),
and the loop's longest stall (the largest gap between two ticks, minus the 1 ms period).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from crawjud_tasks import create_app, task_contract
from crawjud_tasks.testing import RedisServer, close_app, settings_for


@task_contract("bench.async_add")
def add(a: int, b: int) -> int:
    raise NotImplementedError


async def _measure(count: int, awaitable: bool, app: object) -> tuple[float, float]:
    ref = add.using(app)  # type: ignore[arg-type]
    gaps: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0.01)
    started = time.perf_counter()
    for i in range(count):
        if awaitable:
            await ref.adelay(i, 1)
        else:
            ref.delay(i, 1)
            await asyncio.sleep(0)  # let the ticker see the loop between two blocking calls
    elapsed = time.perf_counter() - started
    done.set()
    await task
    return elapsed / count, max(gaps) - 0.001


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=500)
    options = parser.parse_args()
    with RedisServer(appendonly=False) as server:
        app = create_app(settings_for(server, Path(tempfile.mkdtemp(prefix="cjb-"))))
        try:
            for label, awaitable in (("delay on the loop", False), ("await adelay", True)):
                per, stall = asyncio.run(_measure(options.count, awaitable, app))
                line = f"{per * 1e6:8.0f} us/dispatch   longest loop stall {stall * 1e3:6.2f} ms"
                print(f"{label:18} {line}")
        finally:
            close_app(app)


if __name__ == "__main__":
    main()
