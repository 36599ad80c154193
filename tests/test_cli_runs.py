"""``crawjud-tasks run`` and ``runs watch | cancel | show``: real CLI processes, a real worker
process running the test bots (``tests/examples/bots``), real Redis.

The CLI reaches the worker's Redis and namespace through the settings' ``CRAWJUD_TASKS_*``
environment, as an operator's shell would.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from celery import Celery

from crawjud_tasks import Settings, create_app
from crawjud_tasks._app import close_app
from crawjud_tasks._cli._progress import Progress
from crawjud_tasks.bots import RunEvent, run_state
from crawjud_tasks.bots.contracts import RunCounts, RunStatus
from crawjud_tasks.testing import RedisServer, WorkerProcess, wait_for
from tests.helpers import bot_settings, bot_worker, python_env

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def cli_settings(
    crawjud_redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    return bot_settings(crawjud_redis_server, tmp_path_factory, "cr", visibility_timeout=20)


@pytest.fixture(scope="module")
def inputs(cli_settings: Settings) -> Path:
    return cli_settings.bots.allowed_roots[0]


@pytest.fixture(scope="module")
def cli_host(cli_settings: Settings) -> Iterator[Celery]:
    app = create_app(cli_settings)
    yield app
    close_app(app)


@pytest.fixture(scope="module")
def cli_worker(
    cli_host: Celery, cli_settings: Settings, crawjud_redis_server: RedisServer
) -> Iterator[WorkerProcess]:
    process = bot_worker(cli_host, cli_settings, crawjud_redis_server)
    process.start()
    yield process
    process.stop()
    process.log_path.unlink(missing_ok=True)


@pytest.fixture(scope="module")
def env(cli_settings: Settings) -> dict[str, str]:
    """The CLI's environment: the worker's settings, this checkout's crawjud_tasks."""
    return python_env(cli_settings.to_env())


def cli(env: dict[str, str], *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "crawjud_tasks", *args],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def start_cli(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "crawjud_tasks", *args],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def csv_file(folder: Path, n: int, **actions: str) -> Path:
    """``n`` rows; ``actions`` maps ``r<spreadsheet row>`` to an ACTION."""
    path = folder / f"{uuid.uuid4().hex[:8]}.csv"
    lines = ["NUMERO;ACTION"]
    lines += [f"{i:07d};{actions.get(f'r{i + 2}', '')}" for i in range(n)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def new_id() -> str:
    return f"cli-{uuid.uuid4().hex[:10]}"


def running_with(host: Celery, run_id: str, done: int) -> bool:
    state = run_state(host, run_id)
    return state is not None and state.phase == "running" and state.counts.done >= done


def one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("Error: ")
    return lines[0]


# -- run ---------------------------------------------------------------------------------------


def test_a_run_to_completion_shows_progress_and_a_summary(
    env: dict[str, str], cli_worker: WorkerProcess, inputs: Path
) -> None:
    run_id = new_id()
    out = cli(env, "run", "test.echo", "--input", str(csv_file(inputs, 5)), "--run-id", run_id,
              "--user", "7", "--option", "label=cli")  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith(f"run {run_id}: test.echo for user 7 over {inputs}")
    assert "started test.echo for user 7: 5 items" in lines[1]
    assert "progress: 5/5 items (100%), 5 ok, 0 failed" in out.stdout
    assert f"run {run_id} completed in " in out.stdout
    assert "  items:  5 total, 5 succeeded, 0 failed" in out.stdout
    [report] = [line.split("report: ", 1)[1] for line in lines if line.startswith("  report: ")]
    assert Path(report).is_file()
    assert "\r" not in out.stdout and "\x1b" not in out.stdout  # no terminal: plain lines
    assert out.stderr == ""


def test_a_run_with_a_failed_row_exits_3_and_names_the_error(
    env: dict[str, str], cli_worker: WorkerProcess, inputs: Path
) -> None:
    path = csv_file(inputs, 4, r3="fail", r5="skip")
    out = cli(env, "run", "test.echo", "--input", str(path), "--user", "ana")
    assert out.returncode == 3, out.stdout + out.stderr
    assert "[row 3] error: lawsuit 0000001 not found" in out.stdout
    assert " completed_with_errors in " in out.stdout
    assert "  items:  4 total, 2 succeeded, 1 failed, 1 skipped" in out.stdout
    assert "  first errors: row 3: lawsuit 0000001 not found" in out.stdout
    assert "success" not in out.stdout  # success lines are not printed one by one


def test_detach_then_watch_replays_the_run_and_exits_with_its_code(
    env: dict[str, str], cli_host: Celery, cli_worker: WorkerProcess, inputs: Path
) -> None:
    path = csv_file(inputs, 6, r4="fail")
    detached = cli(env, "run", "test.echo", "--input", str(path), "--detach",
                   "--option", "delay=0.05")  # fmt: skip
    assert detached.returncode == 0, detached.stderr
    run_id = detached.stdout.strip()
    assert detached.stdout == f"{run_id}\n"  # only the id: $(crawjud-tasks run ... --detach)
    assert f"crawjud-tasks runs watch {run_id}" in detached.stderr
    watched = cli(env, "runs", "watch", run_id)
    assert watched.returncode == 3, watched.stdout + watched.stderr
    assert "started test.echo" in watched.stdout
    assert "[row 4] error: lawsuit 0000002 not found" in watched.stdout
    assert f"run {run_id} completed_with_errors in " in watched.stdout
    # Once it ended, a watch is a replay with the same summary.
    again = cli(env, "runs", "watch", run_id)
    assert again.returncode == 3
    assert again.stdout.splitlines()[-3:] == watched.stdout.splitlines()[-3:]
    state = run_state(cli_host, run_id)
    assert state is not None and state.phase == "completed_with_errors"


def test_runs_show_prints_the_state_and_json(
    env: dict[str, str], cli_worker: WorkerProcess, inputs: Path
) -> None:
    run_id = new_id()
    path = csv_file(inputs, 3, r2="fail")
    assert cli(env, "run", "test.echo", "--input", str(path), "--run-id", run_id,
               "--user", "ana").returncode == 3  # fmt: skip
    shown = cli(env, "runs", "show", run_id)
    assert shown.returncode == 0, shown.stderr
    assert "phase:    completed_with_errors" in shown.stdout
    assert "bot:      test.echo" in shown.stdout
    assert "user:     ana" in shown.stdout
    assert "items:    3 total, 2 succeeded, 1 failed, 0 skipped, 0 left" in shown.stdout
    assert "errors:   row 2: lawsuit 0000000 not found" in shown.stdout
    data = json.loads(cli(env, "runs", "show", run_id, "--json").stdout)
    assert data["phase"] == "completed_with_errors"
    assert data["user_id"] == "ana"
    assert data["counts"] == {
        "total": 3, "succeeded": 2, "failed": 1, "skipped": 0, "remaining": 0,
    }  # fmt: skip
    assert Path(data["report"]).is_file()
    assert data["error_sample"] == ["row 2: lawsuit 0000000 not found"]
    assert data["cancel_requested"] is False
    assert dt.datetime.fromisoformat(data["finished_at"]) >= dt.datetime.fromisoformat(
        data["started_at"]
    )
    unknown = cli(env, "runs", "show", "no-such-run")
    assert unknown.returncode == 1
    assert "no run 'no-such-run' is known" in one_error_line(unknown.stderr)


def test_runs_cancel_from_a_second_process_ends_the_followed_run_as_cancelled(
    env: dict[str, str], cli_host: Celery, cli_worker: WorkerProcess, inputs: Path
) -> None:
    run_id = new_id()
    path = csv_file(inputs, 60)
    follower = start_cli(env, "run", "test.echo", "--input", str(path), "--run-id", run_id,
                         "--option", "delay=0.2")  # fmt: skip
    try:
        wait_for(lambda: running_with(cli_host, run_id, 2))
        cancelled = cli(env, "runs", "cancel", run_id)
        assert cancelled.returncode == 0, cancelled.stderr
        assert f"run {run_id} was running (" in cancelled.stdout
        assert "cancel requested" in cancelled.stdout
        stdout, stderr = follower.communicate(timeout=60)
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.communicate()
    assert follower.returncode == 4, stdout + stderr
    assert "cancel requested: stopping before the next item" in stdout
    assert f"run {run_id} cancelled in " in stdout
    assert " not done" in stdout
    # Cancelling a run that ended changes nothing.
    late = cli(env, "runs", "cancel", run_id)
    assert late.returncode == 0
    assert "had already ended (cancelled)" in late.stdout


def test_runs_cancel_of_a_run_not_started_yet_is_kept(
    env: dict[str, str], cli_host: Celery, cli_worker: WorkerProcess, inputs: Path
) -> None:
    run_id = new_id()
    early = cli(env, "runs", "cancel", run_id)
    assert early.returncode == 0, early.stderr
    assert "is not known" in early.stdout and "ends as cancelled" in early.stdout
    out = cli(env, "run", "test.echo", "--input", str(csv_file(inputs, 3)), "--run-id", run_id)
    assert out.returncode == 4, out.stdout + out.stderr
    assert f"run {run_id} cancelled" in out.stdout


def test_ctrl_c_without_a_terminal_stops_watching_and_the_run_goes_on(
    env: dict[str, str], cli_host: Celery, cli_worker: WorkerProcess, inputs: Path
) -> None:
    run_id = new_id()
    path = csv_file(inputs, 30)
    follower = start_cli(env, "run", "test.echo", "--input", str(path), "--run-id", run_id,
                         "--option", "delay=0.1")  # fmt: skip
    try:
        wait_for(lambda: running_with(cli_host, run_id, 2))
        follower.send_signal(signal.SIGINT)
        stdout, stderr = follower.communicate(timeout=30)
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.communicate()
    assert follower.returncode == 130, stdout + stderr
    assert "standard input is not a terminal: not asking" in stderr
    assert f"run {run_id} goes on" in stderr
    assert f"crawjud-tasks runs watch {run_id}" in stderr
    state = wait_for(
        lambda: (s := run_state(cli_host, run_id)) is not None and s.finished and s, timeout=60
    )
    assert state.phase == "completed"
    assert state.counts.succeeded == 30
    assert not state.cancel_requested


# -- refused runs and bad usage ----------------------------------------------------------------


def test_an_unknown_bot_is_a_one_line_refusal(
    env: dict[str, str], cli_worker: WorkerProcess, inputs: Path
) -> None:
    out = cli(env, "run", "test.ecko", "--input", str(csv_file(inputs, 1)))
    assert out.returncode == 1, out.stdout + out.stderr
    line = one_error_line(out.stderr)
    assert " was refused: no bot is registered under 'test.ecko'; did you mean 'test.echo'?" in line


def test_an_option_the_bot_does_not_have_is_a_one_line_refusal(
    env: dict[str, str], cli_worker: WorkerProcess, inputs: Path
) -> None:
    path = str(csv_file(inputs, 1))
    out = cli(env, "run", "test.echo", "--input", path, "--option", "colour=red")
    assert out.returncode == 1, out.stdout + out.stderr
    assert "bot 'test.echo' has no option 'colour'" in one_error_line(out.stderr)
    # A raw credential is refused before anything is sent.
    secret = cli(env, "run", "test.echo", "--input", path, "--option", "senha=hunter2")
    assert secret.returncode == 1
    assert "looks like a credential" in one_error_line(secret.stderr)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--option", "delay"], "'delay' is not KEY=VALUE"),
        (["--option", "=1"], "'=1' is not KEY=VALUE"),
        (["--option", "a=1", "--option", "a=2"], "'a' is given twice"),
        (["--parallel", "0"], "0 is not in the range 1<=x<=64"),
        (["--notify", "not an address"], "--notify 'not an address' is not one address"),
        (["--credentials", "bad name!"], "a SecretRef name is letters"),
        (["--run-id", "-bad"], "a run id is letters"),
        (["--locale", "fr"], "'fr' is not one of"),
        (["--timeout", "0"], "0 is not in the range x>0"),
    ],
)
@pytest.mark.slow
def test_bad_options_are_usage_errors(
    env: dict[str, str], inputs: Path, args: list[str], message: str
) -> None:
    path = inputs / "any.csv"
    path.write_text("NUMERO\n1\n")
    out = cli(env, "run", "test.echo", "--input", str(path), *args)
    assert out.returncode == 2, out.stdout + out.stderr
    assert "Error: Invalid value for '--" in out.stderr
    assert message in out.stderr
    assert out.stdout == ""


@pytest.mark.slow
def test_a_missing_or_wrong_input_file_is_a_usage_error(
    env: dict[str, str], inputs: Path, tmp_path: Path
) -> None:
    missing = cli(env, "run", "test.echo", "--input", str(inputs / "missing.csv"))
    assert missing.returncode == 2
    assert "does not exist" in missing.stderr
    text = tmp_path / "items.txt"
    text.write_text("NUMERO\n1\n")
    wrong = cli(env, "run", "test.echo", "--input", str(text))
    assert wrong.returncode == 2
    assert "is not a .csv or .xlsx file" in wrong.stderr


def test_a_file_outside_the_local_allowed_roots_is_refused_before_dispatch(
    env: dict[str, str], cli_worker: WorkerProcess, tmp_path: Path
) -> None:
    outside = csv_file(tmp_path, 1)
    out = cli(env, "run", "test.echo", "--input", str(outside))
    assert out.returncode == 1, out.stdout + out.stderr
    (error,) = out.stderr.strip().splitlines()
    assert error.startswith(f"Error: {outside} is not inside bots.allowed_roots")
    assert "not dispatched" in error
    assert "CRAWJUD_TASKS_BOTS__ALLOWED_ROOTS" in error


def test_watching_an_unknown_run_waits_then_times_out(
    env: dict[str, str], cli_worker: WorkerProcess
) -> None:
    out = cli(env, "runs", "watch", "never-dispatched", "--timeout", "1.5")
    assert out.returncode == 1
    assert "run never-dispatched is not known yet" in out.stderr
    assert "stopped following run never-dispatched after 1.5 s" in out.stderr


# -- the renderer, without Redis ---------------------------------------------------------------

T0 = dt.datetime(2026, 11, 3, 12, 0, tzinfo=dt.timezone.utc)


def event(kind: Any, second: float, **fields: Any) -> RunEvent:
    return RunEvent(
        id=f"{int(second * 1000)}-0",
        run_id="r1",
        kind=kind,
        time=T0 + dt.timedelta(seconds=second),
        **fields,
    )


def plain(events: list[RunEvent]) -> list[str]:
    out = io.StringIO()
    progress = Progress(out=out, tty=False, clock=lambda: 0.0)  # the clock never moves
    for item in events:
        progress.event(item)
    return out.getvalue().splitlines()


def test_plain_progress_lines_come_at_each_tenth_and_problems_above() -> None:
    events = [event("started", 0, counts=RunCounts(20), data={"bot": "b", "total": 20})]
    for i in range(1, 21):
        failed = 1 if i >= 5 else 0
        level = "error" if i == 5 else "success"
        counts = RunCounts(20, i - failed, failed)
        message = "not found" if i == 5 else None
        events.append(event("item", i, level=level, row=i + 1, counts=counts, message=message))
    events.insert(8, event("log", 7.5, level="warning", message="slow site"))
    events.insert(9, event("log", 7.6, level="info", message="not shown"))
    lines = plain(events)
    progress_lines = [line for line in lines if line.startswith("progress: ")]
    assert len(progress_lines) == 11  # at the start, then at each 10%
    assert progress_lines[-1] == "progress: 20/20 items (100%), 19 ok, 1 failed, 1.0 items/s"
    assert (
        progress_lines[1] == "progress: 2/20 items (10%), 2 ok, 0 failed, 1.0 items/s, 18.0 s left"
    )
    assert any(line.endswith("[row 6] error: not found") for line in lines)
    assert any(line.endswith("warning: slow site") for line in lines)
    assert not any("not shown" in line for line in lines)


def test_counts_come_from_progress_events_or_from_items_without_counts() -> None:
    # A parallel run: progress events carry the counts, item events may carry none.
    events = [
        event("started", 0, counts=RunCounts(10), data={"total": 10}),
        event("item", 1, level="success", row=2),
        event("item", 1.5, level="error", row=3, message="x"),
        event("progress", 2, counts=RunCounts(10, 4, 1, 1)),
        event("item", 3, level="info", row=9),
        event("progress", 4, counts=RunCounts(10, 9, 1, 0)),
    ]
    out = io.StringIO()
    progress = Progress(out=out, tty=False, clock=lambda: 0.0)
    seen = []
    for item in events:
        progress.event(item)
        seen.append(progress.counts)
    assert seen[1] == RunCounts(10, 1, 0, 0)
    assert seen[2] == RunCounts(10, 1, 1, 0)
    assert seen[3] == RunCounts(10, 4, 1, 1)
    assert seen[4] == RunCounts(10, 4, 1, 2)
    assert seen[5] == RunCounts(10, 9, 1, 0)
    assert progress.rate == pytest.approx(10 / 4)
    finished = event("finished", 4, counts=RunCounts(10, 9, 1), status=RunStatus.COMPLETED)
    progress.summary("r1", finished, None)
    assert "run r1 completed in 4.0 s" in out.getvalue()


def test_the_terminal_line_is_redrawn_in_place() -> None:
    out = io.StringIO()
    progress = Progress(out=out, tty=True, columns=80)
    progress.event(event("started", 0, counts=RunCounts(4), data={"total": 4}))
    for i in range(1, 5):
        progress.event(event("item", i, level="success", counts=RunCounts(4, i)))
    progress.event(event("finished", 5, counts=RunCounts(4, 4), status=RunStatus.COMPLETED))
    text = out.getvalue()
    assert "\r[--------------------] 0/4 0% | 0 ok 0 failed | --/s | ETA --\x1b[K" in text
    assert "\r[####################] 4/4 100% | 4 ok 0 failed | 1.0/s | ETA 0.0 s\x1b[K" in text
    assert text.endswith("\r\x1b[K")  # the line is cleared for the summary
