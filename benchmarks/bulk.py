"""Bulk dispatch: how fast N tasks reach the broker, raw Celery's ways against the library's.

    python benchmarks/bulk.py [--tasks 2000] [--rounds 3]

Dispatch only (no worker), results stored, one throwaway Redis server on 127.0.0.1. Rows, each
run once per round in interleaved order, reported as the median rate:

- ``raw loop``: raw Celery, ``task.apply_async((i,))`` N times; ``raw loop B`` is the same
  again, the A/A control that shows the noise floor.
- ``raw group``: raw Celery, ``group(task.s(i) for i in ...).apply_async()``.
- ``lib loop``: the library, ``contract.delay(i)`` N times.
- ``lib group``: the library's ``group([...]).delay()``: each message built and routed once,
  published through one producer in pipelined batches (kombu's ``Producer.batch``), results
  subscribed to when awaited rather than one by one at send time.
- ``lib map_chunks``: ``map_chunks(contract.s(), range(N), 100)``: N items in N/100 messages
  (its rate counts items).

Raw Celery's client spends about 2.3 M instructions per dispatch (routing, options, a result
subscription and result objects per task), which bounds its rows; see docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from celery import Celery
from celery import group as celery_group

from crawjud_tasks import create_app, group, map_chunks, task_contract
from crawjud_tasks._redis_server import RedisServer
from crawjud_tasks.testing import close_app


@task_contract("bench.echo")
def echo(value: int) -> int:
    """Returns its argument."""
    raise NotImplementedError


def _identity(value: int) -> int:
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    n = args.tasks
    with RedisServer() as server:
        raw = Celery("raw", broker=server.url_for(0), backend=server.url_for(1))
        raw.conf.update(task_serializer="json", result_serializer="json", accept_content=["json"])
        raw_echo = raw.task(name="raw.echo", shared=False)(_identity)
        lib = create_app({"broker_url": server.url_for(2), "result_backend": server.url_for(3)})
        ref = echo.using(lib)

        def raw_loop() -> None:
            for i in range(n):
                raw_echo.apply_async((i,))

        def raw_group() -> None:
            celery_group(raw_echo.s(i) for i in range(n)).apply_async()

        def lib_loop() -> None:
            for i in range(n):
                ref.delay(i)

        def lib_group() -> None:
            group([ref.s(i) for i in range(n)]).delay()

        def lib_map_chunks() -> None:
            map_chunks(ref.s(), range(n), 100).delay()

        rows: dict[str, Callable[[], None]] = {
            "raw loop": raw_loop,
            "raw group": raw_group,
            "lib loop": lib_loop,
            "lib group": lib_group,
            "lib map_chunks": lib_map_chunks,
            "raw loop B": raw_loop,
        }
        rates: dict[str, list[float]] = {name: [] for name in rows}
        for run in rows.values():  # warm-up
            run()
        for _ in range(args.rounds):
            for name, run in rows.items():
                server.client().flushall()
                started = time.perf_counter()
                run()
                rates[name].append(n / (time.perf_counter() - started))
        close_app(lib)
        raw.close()
    reference = statistics.median(rates["raw loop"])
    print(f"bulk dispatch of {n} stored-result tasks, median of {args.rounds} rounds")
    print(f"{'':18}{'per second':>12}{'/ raw loop':>12}")
    for name, values in rates.items():
        rate = statistics.median(values)
        print(f"{name:18}{rate:12,.0f}{rate / reference:12.2f}")


if __name__ == "__main__":
    main()
