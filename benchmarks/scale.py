"""Issue 18's targets, measured in one run: bot runs at scale, ratios to figures of the same run.

    PYTHONPATH=src python benchmarks/scale.py [--rows 60000] [--rounds 2]

One throwaway Redis (no append-only file), TWO prefork worker processes of this checkout's
``benchmarks/bot_apps.py`` app (the built-in ``cnj.validar`` and the ``bench.*`` bots), then:

- ``bare``: ``parse_cnj`` over the CSV's numbers in this process (rows/s);
- ``sequential``: ``cnj.validar`` over the CSV (``--rows``), one task; ``parallel 2``: the same
  with ``parallelism=2`` (both workers at concurrency 1). rows/s from the result's times.
  Targets: sequential >= 0.25 of ``bare``; ``parallel 2`` >= 1.5x ``sequential``.
- ``io sequential`` / ``io parallel 8``: ``bench.sleepy`` (5 ms per item), 2,000 items, the
  workers restarted at concurrency 4. Target: parallel >= 6x sequential.
- ``xlsx read``: a 100,000-row, 12-column workbook read by ``read_items`` (rows/s, target
  >= 50,000); ``report``: a 100,000 x 12 report written by ``write_report_stream`` (CSV files,
  XLSX workbook, zip; seconds, target < 3); ``report csv``: the same without the workbook, as a
  run above ``bots.report_xlsx_max_items`` (50,000 by default) writes it.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

from cnj import write_csv
from crawjud_tasks import create_app
from crawjud_tasks.bots._bot import ItemRecord
from crawjud_tasks.bots._inputs import read_items
from crawjud_tasks.bots._reports import ReportRun, write_report_stream
from crawjud_tasks.bots._xlsx_writer import XlsxReport
from crawjud_tasks.bots.cnj import InvalidCnjNumber, parse_cnj
from crawjud_tasks.bots.contracts import BotInput, BotParameters, RunCounts, RunStatus, execute_bot
from crawjud_tasks.testing import RedisServer, WorkerProcess, close_app, settings_for

BENCH_DIR = Path(__file__).resolve().parent
SRC = BENCH_DIR.parent / "src"


def bare(path: Path) -> float:
    rows = path.read_text(encoding="utf-8").splitlines()[1:]
    started = time.perf_counter()
    for row in rows:
        with contextlib.suppress(InvalidCnjNumber):
            parse_cnj(row)
    return len(rows) / (time.perf_counter() - started)


def run_rate(app: object, bot: str, path: Path, rows: int, **params: object) -> float:
    handle = execute_bot.using(
        app
    ).delay(  # type: ignore[arg-type]
        bot,
        0,
        BotParameters(
            input=BotInput.from_file(str(path)), run_id=f"b-{uuid.uuid4().hex[:10]}", **params
        ),  # type: ignore[arg-type]
    )
    result = handle.get(timeout=900)
    assert result.counts.done == rows, result
    return rows / result.seconds


def xlsx_read(folder: Path, rows: int) -> float:
    path = folder / "big.xlsx"
    book = XlsxReport(path, ["S"])
    book.row(0, [f"C{n}" for n in range(12)])
    for number in range(rows):
        book.row(0, [f"text {number}" if n % 2 else number * 1.5 for n in range(12)])
    book.close()
    started = time.perf_counter()
    items = read_items(BotInput.from_file(str(path)), roots=[folder], max_inline_rows=1)
    assert len(items) == rows
    return rows / (time.perf_counter() - started)


def cells(number: int) -> list[str | float]:
    return [f"v{number}" if n % 2 else number * 1.5 for n in range(11)]


def report_seconds(folder: Path, rows: int, *, xlsx: bool) -> float:
    columns = [f"C{n}" for n in range(11)]
    records = [
        ItemRecord(i, i + 2, "succeeded", dict(zip(columns, cells(i), strict=True)), {"R": "ok"})
        for i in range(rows)
    ]
    now = dt.datetime.now(dt.timezone.utc)
    run = ReportRun(
        "r", "b", 0, RunStatus.COMPLETED, RunCounts(rows, rows), now, now, None, columns
    )
    started = time.perf_counter()
    write_report_stream(run, records, ["R"], folder / "report", xlsx=xlsx)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=60_000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    data = Path(tempfile.mkdtemp(prefix="cjt-scale-"))
    inputs = data / "inputs"
    inputs.mkdir()
    cnj_csv, io_csv = inputs / "cnj.csv", inputs / "io.csv"
    write_csv(cnj_csv, args.rows)
    io_csv.write_text("N\n" + "".join(f"{n}\n" for n in range(2000)))
    figures: dict[str, list[float]] = {}

    def note(name: str, value: float) -> None:
        figures.setdefault(name, []).append(value)
        print(f"{name}: {value:,.2f}", file=sys.stderr, flush=True)

    try:
        with RedisServer(appendonly=False) as server:
            settings = settings_for(server, data, bots={"allowed_roots": [str(inputs)]})
            app = create_app(settings)
            env = {
                **settings.to_env(),
                "PYTHONPATH": os.pathsep.join(
                    filter(None, [str(SRC), str(BENCH_DIR), os.environ.get("PYTHONPATH")])
                ),
            }
            for concurrency, cases in ((1, "cnj"), (4, "io")):
                workers = [
                    WorkerProcess(
                        app,
                        app_spec="bot_apps:app",
                        env=env,
                        pool="prefork",
                        concurrency=concurrency,
                    )
                    for _ in range(2)
                ]
                for worker in workers:
                    worker.start()
                try:
                    for _ in range(args.rounds):
                        if cases == "cnj":
                            note("bare", bare(cnj_csv))
                            note("sequential", run_rate(app, "cnj.validar", cnj_csv, args.rows))
                            note(
                                "parallel 2",
                                run_rate(app, "cnj.validar", cnj_csv, args.rows, parallelism=2),
                            )
                        else:
                            opts = {"delay": 0.005}
                            note(
                                "io sequential",
                                run_rate(app, "bench.sleepy", io_csv, 2000, options=opts),
                            )
                            note(
                                "io parallel 8",
                                run_rate(
                                    app, "bench.sleepy", io_csv, 2000, options=opts, parallelism=8
                                ),
                            )
                finally:
                    for worker in workers:
                        worker.stop()
            close_app(app)
        for _ in range(args.rounds):
            note("xlsx read", xlsx_read(inputs, 100_000))
            note("report", report_seconds(data, 100_000, xlsx=True))
            note("report csv", report_seconds(data, 100_000, xlsx=False))
    finally:
        shutil.rmtree(data, ignore_errors=True)
    med = {name: statistics.median(values) for name, values in figures.items()}
    print(f"\nmedians of {args.rounds} rounds, {args.rows:,} CNJ rows")
    for name, value in med.items():
        unit = "s" if name.startswith("report") else "rows/s"
        print(f"  {name:15} {value:12,.2f} {unit}")
    print(f"  sequential / bare        {med['sequential'] / med['bare']:.3f}  (target >= 0.25)")
    print(
        f"  parallel 2 / sequential  {med['parallel 2'] / med['sequential']:.2f}x (target >= 1.5)"
    )
    io = med["io parallel 8"] / med["io sequential"]
    print(f"  io parallel 8 / io seq   {io:.2f}x (target >= 6)")
    print(f"  xlsx read                {med['xlsx read']:,.0f} rows/s (target >= 50,000)")
    print(f"  report 100,000 x 12      {med['report']:.2f} s (target < 3)")
    print(f"  ... without workbook     {med['report csv']:.2f} s (above report_xlsx_max_items)")


if __name__ == "__main__":
    main()
