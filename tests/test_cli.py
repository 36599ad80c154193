"""The crawjud-tasks command line, run as real subprocesses."""

from __future__ import annotations

import email
import email.policy
import json
import os
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from celery import Celery

from crawjud_tasks import EmbeddedRedis
from crawjud_tasks.testing import RedisServer, WorkerProcess, wait_for
from tests.helpers import cli_env, python_env, run_cli


@pytest.mark.slow
def test_version_and_help() -> None:
    out = run_cli("--version")
    assert out.returncode == 0
    assert out.stdout.startswith("crawjud-tasks, version ")
    helptext = run_cli("--help").stdout
    for command in ("worker", "beat", "embedded", "info", "demo", "mail", "run", "runs"):
        assert command in helptext


@pytest.mark.slow
def test_embedded_start_status_stop(crawjud_data_dir: Path) -> None:
    env = {"CRAWJUD_TASKS_DATA_DIR": str(crawjud_data_dir)}
    try:
        assert run_cli("embedded", "status", env=env).returncode == 1
        started = run_cli("embedded", "start", env=env)
        assert started.returncode == 0, started.stderr
        assert started.stdout.startswith("started\nrunning: pid ")
        assert run_cli("embedded", "start", env=env).stdout.startswith("already running")
        status = run_cli("embedded", "status", env=env)
        assert status.returncode == 0
        assert "redis 6" in status.stdout or "redis 7" in status.stdout
        assert run_cli("embedded", "stop", env=env).stdout.strip() == "stopped"
        assert run_cli("embedded", "stop", env=env).stdout.strip() == "not running"
    finally:
        EmbeddedRedis(crawjud_data_dir).stop()


@pytest.mark.slow
def test_info_redacts_and_lists_tasks(crawjud_redis: RedisServer) -> None:
    from crawjud_tasks._redis_server import free_port

    port = free_port()  # nothing listens there
    env = {
        "CRAWJUD_TASKS_BROKER_URL": f"redis://:hunter2@127.0.0.1:{port}/0",
        "CRAWJUD_TASKS_MAIL__PASSWORD": "hunter3",
    }
    out = run_cli("info", "--json", env=env)
    assert out.returncode == 3, out.stderr  # the broker is unreachable: the report, then exit 3
    assert "hunter2" not in out.stdout and "hunter3" not in out.stdout
    report = json.loads(out.stdout)
    assert report["broker"] == f"redis://:***@127.0.0.1:{port}/0"
    assert report["broker_status"].startswith("unreachable")
    assert report["tasks"] == [
        "crawjud.bots.execute_bot",
        "crawjud.bots.finish_run",
        "crawjud.bots.notification_failed",
        "crawjud.bots.reap_runs",
        "crawjud.bots.run_chunk",
        "crawjud.bots.run_failed",
        "crawjud.canvas.flatten",
        "crawjud.canvas.map_chunk",
        "crawjud.mail.send_bulk",
        "crawjud.mail.send_email",
        "crawjud.maintenance.backup",
        "crawjud.maintenance.clean_defaults",
        "crawjud.maintenance.clean_files",
        "crawjud.maintenance.health_check",
        "crawjud.maintenance.redis_hygiene",
        "crawjud.maintenance.restore",
        "crawjud.maintenance.sync",
        "crawjud.monitoring.periodic_report",
        "crawjud.ping",
    ]
    assert report["queues"] == ["crawjud", "crawjud.bots", "crawjud.mail", "crawjud.maintenance"]
    assert report["settings"]["mail"]["password"] == "***"
    plain = run_cli("info", env={"CRAWJUD_TASKS_BROKER_URL": crawjud_redis.url})
    assert plain.returncode == 0
    assert f"{crawjud_redis.url} (reachable)" in plain.stdout


@pytest.mark.slow
def test_invalid_settings_are_one_line_errors() -> None:
    out = run_cli("info", env={"CRAWJUD_TASKS_MAIL__HOTS": "x"})
    assert out.returncode == 1
    assert out.stderr.strip() == (
        "Error: unknown environment variable CRAWJUD_TASKS_MAIL__HOTS; "
        "did you mean CRAWJUD_TASKS_MAIL__HOST?"
    )


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("nocolon", "--app takes 'module:attribute'"),
        ("no_such_module_xyz:app", "cannot import 'no_such_module_xyz'"),
        ("json:nothing", "module 'json' has no attribute 'nothing'"),
        ("json:__name__", "is a str, not a Celery app"),
    ],
)
@pytest.mark.slow
def test_bad_app_option(spec: str, message: str) -> None:
    out = run_cli("--app", spec, "info")
    assert out.returncode == 1
    assert message in out.stderr


def test_worker_for_a_host_app(
    crawjud_redis: RedisServer,
    tmp_path: Path,
    crawjud_worker_process: Callable[..., WorkerProcess],
    crawjud_app: Celery,
) -> None:
    from crawjud_tasks import ping

    module = tmp_path / "hostapp_cli.py"
    module.write_text(
        "import os\n"
        "from crawjud_tasks import create_app\n"
        "def make():\n"
        "    return create_app({'broker_url': os.environ['HOST_BROKER'],"
        " 'result_backend': os.environ['HOST_BACKEND']})\n"
    )
    worker = crawjud_worker_process(
        app_spec="hostapp_cli:make",
        env={
            # The host's module, then the crawjud_tasks under test (not another installed one).
            "PYTHONPATH": os.pathsep.join([str(tmp_path), python_env()["PYTHONPATH"]]),
            "HOST_BROKER": crawjud_redis.url_for(0),
            "HOST_BACKEND": crawjud_redis.url_for(1),
        },
    )
    assert ping(crawjud_app, timeout=20).hostname == worker.nodename


@pytest.mark.slow
def test_beat_holds_its_lock_in_redis(crawjud_redis: RedisServer, crawjud_data_dir: Path) -> None:
    import subprocess
    import sys

    env = cli_env(
        {
            "CRAWJUD_TASKS_BROKER_URL": crawjud_redis.url,
            "CRAWJUD_TASKS_DATA_DIR": str(crawjud_data_dir),
        }
    )
    beat = subprocess.Popen(
        [sys.executable, "-m", "crawjud_tasks", "beat", "--loglevel", "warning"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    client = crawjud_redis.client()
    try:

        def locked() -> bool:
            assert beat.poll() is None, beat.stderr.read() if beat.stderr else ""
            return bool(client.exists("crawjud:schedules:leader"))

        wait_for(locked, interval=0.1, what="beat to take its lock")
        assert client.exists("crawjud:schedules:leader")
        # No pickled shelve file: the schedule lives in Redis.
        assert not list(Path.cwd().glob("celerybeat-schedule*"))
    finally:
        beat.terminate()
        beat.wait(timeout=20)
        client.close()
        if beat.stderr:
            beat.stderr.close()


@pytest.mark.slow
def test_demo_runs_end_to_end(crawjud_data_dir: Path) -> None:
    out = run_cli("demo", env={"CRAWJUD_TASKS_DATA_DIR": str(crawjud_data_dir)}, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "started redis" in out.stdout
    assert "answered by crawjud-" in out.stdout
    assert "stopping the embedded Redis" in out.stdout
    assert "demo finished in" in out.stdout
    # The bot ran over the generated spreadsheet: the summary, the report, the notification.
    assert "started cnj.validar for user demo: 1000 items" in out.stdout
    assert "progress: 1000/1000 items (100%)" in out.stdout
    summary = next(line for line in out.stdout.splitlines() if line.startswith("run "))
    assert "completed_with_errors" in summary
    run_id = summary.split()[1]
    counts = next(line for line in out.stdout.splitlines() if line.strip().startswith("items:"))
    assert "1000 total" in counts and "succeeded" in counts and "failed" in counts
    report = Path(out.stdout.split("report: ", 1)[1].split()[0])
    with zipfile.ZipFile(report) as archive:
        names = archive.namelist()
    assert any(name.endswith("errors.csv") for name in names)
    notified = [line for line in out.stdout.splitlines() if "notification:" in line]
    assert len(notified) == 1, out.stdout
    eml = Path(notified[0].split("notification:", 1)[1].strip())
    assert eml.parent == crawjud_data_dir / "outbox"
    message = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
    assert run_id in str(message["Subject"])
    assert [part.get_filename() for part in message.iter_attachments()] == [report.name]
    # It stopped what it started.
    assert EmbeddedRedis(crawjud_data_dir).status().running is False


@pytest.mark.slow
def test_demo_leaves_a_running_server_alone(crawjud_data_dir: Path) -> None:
    embedded = EmbeddedRedis(crawjud_data_dir)
    embedded.start()
    try:
        out = run_cli("demo", env={"CRAWJUD_TASKS_DATA_DIR": str(crawjud_data_dir)}, timeout=120)
        assert out.returncode == 0, out.stdout + out.stderr
        assert "attached to redis" in out.stdout
        assert embedded.status().running
    finally:
        embedded.stop()


@pytest.mark.slow
def test_mail_send_test_writes_to_the_outbox_without_a_host(crawjud_data_dir: Path) -> None:
    out = run_cli(
        "mail", "send-test", "ana@example.org", "--locale", "en",
        env={"CRAWJUD_TASKS_DATA_DIR": str(crawjud_data_dir)},
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    [eml] = (crawjud_data_dir / "outbox").glob("*.eml")
    assert f"sent to ana@example.org through {eml}" in out.stdout
    # A bad address is a one-line error, and nothing is written.
    bad = run_cli(
        "mail", "send-test", "not an address",
        env={"CRAWJUD_TASKS_DATA_DIR": str(crawjud_data_dir)},
    )  # fmt: skip
    assert bad.returncode == 1
    assert bad.stderr.strip().startswith("Error:")
    assert len(bad.stderr.strip().splitlines()) == 1
    assert len(list((crawjud_data_dir / "outbox").glob("*.eml"))) == 1


@pytest.mark.slow
def test_info_redacts_a_password_in_the_query_of_a_url(crawjud_redis: RedisServer) -> None:
    from crawjud_tasks._redis_server import free_port

    port = free_port()  # nothing listens there
    env = {
        "CRAWJUD_TASKS_BROKER_URL": f"redis://127.0.0.1:{port}/0?password=hunter8",
        "CRAWJUD_TASKS_RESULT_BACKEND": f"redis://127.0.0.1:{port}/1?password=hunter9",
    }
    out = run_cli("info", "--json", env=env)
    assert "hunter8" not in out.stdout + out.stderr
    assert "hunter9" not in out.stdout + out.stderr
    report = json.loads(out.stdout)
    assert report["result_backend"] == f"redis://127.0.0.1:{port}/1?password=***"
