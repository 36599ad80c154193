"""``cnj.validar`` over 100,000 rows: rows/s, sequential and parallel with two worker processes.

    PYTHONPATH=src python benchmarks/cnj.py [--rows 100000] [--rounds 3]

One throwaway Redis server on 127.0.0.1 (no append-only file), a CSV of ``--rows`` rows (column
``NUMERO_PROCESSO``: formatted numbers whose check digits come from ``compute_check_digits``;
5% of them invalid, mostly a wrong check digit, some of the other reasons) inside
``bots.allowed_roots``, and TWO worker subprocesses of the library's own app (``WorkerProcess``
without ``app_spec``: the built-in bot needs no host module), pool ``prefork``, concurrency 1
each, importing this checkout's ``src``. ``bots.events_max`` is 250,000, so that the stream keeps
every item event of a run. Both workers run during every case. Cases, each run once per round
in a rotating order, after one untimed warm-up of each on 2,000 rows:

- ``sequential``: ``execute_bot("cnj.validar", ...)`` with ``BotParameters(input=...)``: one
  worker runs the whole run, the other idles.
- ``parallel``: the same with ``parallelism=2``: ``execute_bot`` reads the input and replaces
  itself by a chord of two ``bots.run_chunk`` tasks (one per worker) whose body
  ``bots.finish_run`` merges the checkpoint and writes the report.
- ``sequential B``: ``sequential`` again, the A/A control.

Figures per case (medians over rounds):

- ``rows/s``: rows / (the result's ``finished_at`` - ``started_at``): the whole run inside the
  workers (for ``parallel``, from the ``execute_bot`` task's start to the finish task's end).
- Phases, from the run's events (``crawjud_tasks.bots.run_events``): ``prepare`` is
  ``started_at`` to the ``started`` event (lease, reading the input, checkpoint); ``to items``
  the ``started`` event to the first ``item`` event (sequential: ``setup``; parallel: the chord
  sent, each chunk task taken, its lease, its own read of the whole input and checkpoint,
  ``setup``); ``loop`` the first ``item`` event to the last one (parallel: of either chunk);
  ``report`` the last ``item`` event to the ``report: ...`` log line (sequential: the report
  written; parallel: the chord's join, then ``finish_run`` re-reading the input and the whole
  checkpoint and writing the report); ``end`` that line to ``finished_at``.
- For ``parallel``, each chunk's own loop (its first to last ``item`` event): when it starts and
  ends, relative to the ``started`` event, and its rows/s.
- CPU, from ``/proc``: the two workers' process trees, the Redis server (``INFO cpu``), this
  process, and the whole machine's busy and steal time (``/proc/stat``) over the run, in cores
  (CPU seconds / wall seconds). ``others`` is the machine's busy time minus ours: other jobs.

Then, once, in this process: how long the steps that a parallel run repeats take on this
machine (``read_items`` of the whole CSV, ``load_checkpoint`` of a 100,000-item run, the report
written by ``write_report``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import redis

from crawjud_tasks import create_app
from crawjud_tasks._state import app_state
from crawjud_tasks.bots import run_events
from crawjud_tasks.bots._bot import ItemRecord
from crawjud_tasks.bots._checkpoint import saved_outcomes
from crawjud_tasks.bots._inputs import read_items
from crawjud_tasks.bots._parallel import split
from crawjud_tasks.bots._reports import ReportRun, write_report
from crawjud_tasks.bots._run import run_folder
from crawjud_tasks.bots._store import RunStore
from crawjud_tasks.bots.cnj import compute_check_digits
from crawjud_tasks.bots.contracts import (
    BotInput,
    BotParameters,
    BotRunResult,
    RunCounts,
    RunStatus,
    execute_bot,
)
from crawjud_tasks.testing import RedisServer, WorkerProcess, close_app, settings_for

BENCH_DIR = Path(__file__).resolve().parent
#: This checkout's sources, first on the workers' PYTHONPATH (the venv may hold another checkout).
SRC = BENCH_DIR.parent / "src"
TIMEOUT = 300.0
BOT = "cnj.validar"
CASES: dict[str, int] = {"sequential": 1, "parallel": 2, "sequential B": 1}
TICK = os.sysconf("SC_CLK_TCK")

# -- the input --------------------------------------------------------------------------------

#: (segment, tribunals) that exist, weighted roughly as lawsuits are: mostly state courts.
_COURTS = [(8, range(1, 28))] * 6 + [(5, range(1, 25))] * 2 + [(4, range(1, 7))]


def cnj_number(rng: random.Random) -> str:
    """A valid formatted CNJ number."""
    segment, tribunals = rng.choice(_COURTS)
    fields = (
        f"{rng.randrange(10_000_000):07d}",
        str(rng.randrange(2010, 2026)),
        str(segment),
        f"{rng.choice(tribunals):02d}",
        f"{rng.randrange(10_000):04d}",
    )
    check = compute_check_digits(*fields)
    sequence, year, j, tr, origin = fields
    return f"{sequence}-{check}.{year}.{j}.{tr}.{origin}"


def invalid_number(rng: random.Random, valid: str) -> str:
    """``valid`` spoilt: 80% a wrong check digit, the rest the other reasons."""
    kind = rng.random()
    if kind < 0.8:
        wrong = (int(valid[8]) + rng.randrange(1, 10)) % 10
        return f"{valid[:8]}{wrong}{valid[9:]}"  # check_digits
    if kind < 0.88:
        return valid[:-1]  # length
    if kind < 0.94:
        return f"n {valid}"  # characters
    # right check digits, but a state tribunal past 27 (tribunal) or a year to come (year)
    sequence, year, origin = valid[:7], valid[11:15], valid[21:]
    tribunal = f"{rng.randrange(28, 100)}" if kind < 0.97 else "26"
    if kind >= 0.97:
        year = str(rng.randrange(2100, 10_000))
    check = compute_check_digits(sequence, year, "8", tribunal, origin)
    return f"{sequence}-{check}.{year}.8.{tribunal}.{origin}"


def write_csv(path: Path, rows: int, seed: int = 65) -> None:
    rng = random.Random(seed)
    lines = ["NUMERO_PROCESSO"]
    for _ in range(rows):
        number = cnj_number(rng)
        lines.append(invalid_number(rng, number) if rng.random() < 0.05 else number)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def expected_counts(path: Path) -> RunCounts:
    """What the run must count: each number checked here with the library's own parser."""
    from crawjud_tasks.bots.cnj import InvalidCnjNumber, parse_cnj  # noqa: PLC0415

    rows = path.read_text(encoding="utf-8").splitlines()[1:]
    failed = 0
    for row in rows:
        try:
            parse_cnj(row)
        except InvalidCnjNumber:
            failed += 1
    return RunCounts(total=len(rows), succeeded=len(rows) - failed, failed=failed, skipped=0)


# -- CPU ----------------------------------------------------------------------------------------


def _proc_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


def _tree(pid: int) -> list[int]:
    pids = [pid]
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children = (task / "children").read_text().split()
        except OSError:
            continue
        for child in children:
            pids += _tree(int(child))
    return pids


def cpu_snapshot(workers: list[WorkerProcess], client: redis.Redis) -> dict[str, float]:
    """CPU seconds so far: the workers' trees, Redis, this process, the machine."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    info: dict[str, Any] = client.info("cpu")
    own = os.times()
    return {
        "workers": sum(_proc_seconds(p) for w in workers if w.pid for p in _tree(w.pid)),
        "redis": float(info["used_cpu_user"]) + float(info["used_cpu_sys"]),
        "bench": own.user + own.system,
        "busy": (user + nice + system + irq + softirq) / TICK,
        "steal": steal / TICK,
        "wall": time.monotonic(),
    }


def cpu_cores(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    wall = after["wall"] - before["wall"]
    out = {key: (after[key] - before[key]) / wall for key in before if key != "wall"}
    out["others"] = out["busy"] - out["workers"] - out["redis"] - out["bench"]
    return out


# -- one run ------------------------------------------------------------------------------------


def measure(
    app: Any,
    path: Path,
    expected: RunCounts,
    parallelism: int,
    workers: list[WorkerProcess],
    client: redis.Redis,
    *,
    keep: bool = False,
) -> dict[str, Any]:
    """One run of ``cnj.validar``; its figures from the result and the event stream."""
    run_id = f"cnj-{uuid.uuid4().hex[:10]}"
    params = BotParameters(
        input=BotInput.from_file(str(path)), run_id=run_id, parallelism=parallelism
    )
    before = cpu_snapshot(workers, client)
    result: BotRunResult = execute_bot.using(app).delay(BOT, 0, params).get(timeout=TIMEOUT)
    cpu = cpu_cores(before, cpu_snapshot(workers, client))
    if result.status is not RunStatus.COMPLETED_WITH_ERRORS or result.counts != expected:
        msg = (
            f"{run_id}: {result.status.value} {result.counts} (expected {expected}) {result.error}"
        )
        raise SystemExit(msg)
    n = expected.total
    started_at, finished_at = result.started_at.timestamp(), result.finished_at.timestamp()
    items: list[tuple[float, int]] = []
    started = report = 0.0
    for event in run_events(app, run_id):
        if event.kind == "item":
            items.append((event.time.timestamp(), (event.row or 0) - 2))
        elif event.kind == "started":
            started = event.time.timestamp()
        elif event.kind == "log" and (event.message or "").startswith("report: "):
            report = event.time.timestamp()
    if len(items) != n or not started or not report:
        msg = f"{run_id}: {len(items)} item events of {n}, started {started}, report {report}"
        raise SystemExit(msg)
    first, last = min(t for t, _ in items), max(t for t, _ in items)
    out: dict[str, Any] = {
        "run_id": run_id,
        "rows": n / (finished_at - started_at),
        "seconds": finished_at - started_at,
        "prepare": started - started_at,
        "to_items": first - started,
        "loop": last - first,
        "report": report - last,
        "end": finished_at - report,
        "cpu": cpu,
        "chunks": [],
    }
    if parallelism > 1:
        for start, stop in split(n, parallelism):
            times = [t for t, index in items if start <= index < stop]
            c_first, c_last = min(times), max(times)
            out["chunks"].append({
                "start": c_first - started,
                "end": c_last - started,
                "rows": (len(times) - 1) / (c_last - c_first),
            })  # fmt: skip
    if not keep:
        forget(app, client, run_id)
    return out


def forget(app: Any, client: redis.Redis, run_id: str) -> None:
    """Drop a measured run's Redis records and folder (100,000 events and checkpoint lines)."""
    keys = list(client.scan_iter(match=app_state(app).keys.run_pattern(run_id), count=1000))
    if keys:
        client.delete(*keys)
    shutil.rmtree(run_folder(app, run_id), ignore_errors=True)


# -- the steps a parallel run repeats, timed here -----------------------------------------------


def explain(app: Any, settings: Any, path: Path, run_id: str) -> dict[str, float]:
    """Seconds of ``read_items``, ``load_checkpoint`` and ``write_report`` on a finished run."""
    roots, inline = settings.bots.allowed_roots, settings.bots.max_inline_rows
    out: dict[str, list[float]] = {"read": [], "checkpoint": [], "report": []}
    folder = Path(tempfile.mkdtemp(prefix="cjt-cnj-report-"))
    try:
        for _ in range(2):
            t0 = time.perf_counter()
            items = read_items(BotInput.from_file(str(path)), roots=roots, max_inline_rows=inline)
            t1 = time.perf_counter()
            lines = RunStore(app, run_id).checkpoint()
            records = [
                ItemRecord(item.index, item.row, status, item.data, data, reason)
                for item, (status, data, reason) in zip(items, saved_outcomes(lines), strict=False)
            ]
            counts = RunCounts(
                total=len(items),
                succeeded=sum(1 for r in records if r.status == "succeeded"),
                failed=sum(1 for r in records if r.status == "failed"),
            )
            t2 = time.perf_counter()
            columns: dict[str, None] = {}
            for item in items:
                columns.update(dict.fromkeys(item.data))
            now = dt.datetime.now(dt.timezone.utc)
            run = ReportRun(
                run_id=run_id,
                bot=BOT,
                user_id=0,
                status=RunStatus.COMPLETED_WITH_ERRORS,
                counts=counts,
                started_at=now,
                finished_at=now,
                error=None,
                columns=list(columns),
            )
            write_report(run, records, folder / "report")
            t3 = time.perf_counter()
            out["read"].append(t1 - t0)
            out["checkpoint"].append(t2 - t1)
            out["report"].append(t3 - t2)
            shutil.rmtree(folder / "report", ignore_errors=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return {key: min(values) for key, values in out.items()}


# -- main ---------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    clock = time.monotonic()
    data_dir = Path(tempfile.mkdtemp(prefix="cjt-cnj-"))
    inputs = data_dir / "inputs"
    inputs.mkdir()
    big, small = inputs / "numbers.csv", inputs / "warmup.csv"
    write_csv(big, args.rows)
    write_csv(small, 2_000, seed=7)
    expected, expected_small = expected_counts(big), expected_counts(small)
    figures: dict[str, list[dict[str, Any]]] = {name: [] for name in CASES}
    explained: dict[str, float] = {}
    try:
        with RedisServer(appendonly=False) as server:
            settings = settings_for(
                server, data_dir, bots={"allowed_roots": [str(inputs)], "events_max": 250_000}
            )
            app = create_app(settings)
            client = redis.Redis.from_url(server.url_for(0))
            env = {
                "PYTHONPATH": os.pathsep.join(
                    filter(None, [str(SRC), os.environ.get("PYTHONPATH")])
                )
            }
            workers = [
                WorkerProcess(app, settings=settings, env=env, pool="prefork", concurrency=1)
                for _ in range(2)
            ]
            try:
                for worker in workers:
                    worker.start()
                for parallelism in CASES.values():  # warm-up: imports, connections, the report
                    measure(app, small, expected_small, parallelism, workers, client)
                names = list(CASES)
                last_parallel = ""
                for r in range(args.rounds):
                    order = names[r % len(names) :] + names[: r % len(names)]
                    for name in order:
                        keep = name == "parallel" and r == args.rounds - 1
                        out = measure(app, big, expected, CASES[name], workers, client, keep=keep)
                        figures[name].append(out)
                        if keep:
                            last_parallel = out["run_id"]
                    print(f"round {r + 1}: " + ", ".join(
                        f"{name} {figures[name][-1]['rows']:,.0f}/s" for name in names
                    ), file=sys.stderr, flush=True)  # fmt: skip
                explained = explain(app, settings, big, last_parallel)
                forget(app, client, last_parallel)
            finally:
                for worker in workers:
                    worker.stop()
                    worker.log_path.unlink(missing_ok=True)
            client.close()
            close_app(app)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    report(figures, expected, args.rounds, explained)
    print(f"\n(benchmark took {time.monotonic() - clock:.0f} s)")


def report(
    figures: dict[str, list[dict[str, Any]]],
    expected: RunCounts,
    rounds: int,
    explained: dict[str, float],
) -> None:
    def med(name: str, key: str) -> float:
        return statistics.median(f[key] for f in figures[name])

    def med_cpu(name: str, key: str) -> float:
        return statistics.median(f["cpu"][key] for f in figures[name])

    n = expected.total
    print(
        f"\n{BOT}: {n:,} rows ({expected.failed:,} invalid), two prefork workers "
        f"(concurrency 1 each), median of {rounds} rounds"
    )
    print(
        f"{'':14}{'rows/s':>8}{'run':>8}{'prepare':>9}{'to items':>10}{'loop':>8}{'report':>8}"
        f"{'end':>7}   rows/s by round"
    )
    for name, values in figures.items():
        by_round = ", ".join(f"{f['rows']:,.0f}" for f in values)
        print(
            f"{name:14}{med(name, 'rows'):8,.0f}{med(name, 'seconds'):7.2f}s"
            f"{med(name, 'prepare'):8.2f}s{med(name, 'to_items'):9.2f}s{med(name, 'loop'):7.2f}s"
            f"{med(name, 'report'):7.2f}s{med(name, 'end'):6.2f}s   {by_round}"
        )
    seq, par, aa = med("sequential", "rows"), med("parallel", "rows"), med("sequential B", "rows")
    print(
        f"parallel / sequential: {par / seq:.2f}x (A/A: sequential B / sequential {aa / seq:.2f})"
    )
    print(
        f"sequential loop: {(n - 1) / med('sequential', 'loop'):,.0f} rows/s; "
        f"parallel loop (both chunks): {(n - 1) / med('parallel', 'loop'):,.0f} rows/s"
    )
    serial = sum(med("parallel", key) for key in ("prepare", "to_items", "report", "end"))
    bound = serial + med("sequential", "loop") / 2
    print(
        f"parallel outside its loop: {serial:.2f}s (sequential: "
        f"{med('sequential', 'seconds') - med('sequential', 'loop'):.2f}s); with chunks each as "
        f"fast as the sequential loop, the run would take {bound:.2f}s: "
        f"{med('sequential', 'seconds') / bound:.2f}x the sequential run"
    )
    for number in range(len(figures["parallel"][0]["chunks"])):
        chunks = [f["chunks"][number] for f in figures["parallel"]]
        print(
            f"  chunk {number}: first item +{statistics.median(c['start'] for c in chunks):.2f}s, "
            f"last +{statistics.median(c['end'] for c in chunks):.2f}s after 'started', "
            f"{statistics.median(c['rows'] for c in chunks):,.0f} rows/s"
        )
    print("CPU in cores (CPU s / wall s), median:")
    print(f"{'':14}{'workers':>9}{'redis':>7}{'bench':>7}{'others':>8}{'machine':>9}{'steal':>7}")
    for name in figures:
        print(
            f"{name:14}{med_cpu(name, 'workers'):9.2f}{med_cpu(name, 'redis'):7.2f}"
            f"{med_cpu(name, 'bench'):7.2f}{med_cpu(name, 'others'):8.2f}"
            f"{med_cpu(name, 'busy'):9.2f}{med_cpu(name, 'steal'):7.2f}"
        )
    if explained:
        print(
            f"in this process (best of 2): read_items {explained['read']:.2f}s, "
            f"load_checkpoint {explained['checkpoint']:.2f}s, "
            f"write_report {explained['report']:.2f}s"
        )


if __name__ == "__main__":
    main()
