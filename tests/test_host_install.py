"""``install()`` onto a host's existing Celery app: a plain worker consumes the CrawJUD queues too,
and a worker that consumes none of them says so at start."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from celery import Celery

from crawjud_tasks import install, ping
from crawjud_tasks.testing import RedisServer, close_app, wait_for
from tests.helpers import python_env, python_path

pytestmark = pytest.mark.slow

_HOST = """
from celery import Celery
from crawjud_tasks import install

app = Celery("host", broker={broker!r}, backend={backend!r}, set_as_current=False)
app.conf.task_default_queue = "legacy"


@app.task(name="host.hello")
def hello() -> str:
    return "hello"


install(app, {{"namespace": "crawjud", "data_dir": {data!r}}})
"""


@pytest.fixture
def host_module(crawjud_redis: RedisServer, tmp_path: Path) -> Path:
    """A host's module ``host.py``: its own app with a ``legacy`` default queue, then install()."""
    source = _HOST.format(
        broker=crawjud_redis.url_for(0), backend=crawjud_redis.url_for(1), data=str(tmp_path)
    )
    (tmp_path / "host.py").write_text(textwrap.dedent(source))
    return tmp_path


@pytest.fixture
def host_app(crawjud_redis: RedisServer, tmp_path: Path) -> Iterator[Celery]:
    """The same app as ``host.py``, built in the test process to dispatch with."""
    app = Celery(
        "host",
        broker=crawjud_redis.url_for(0),
        backend=crawjud_redis.url_for(1),
        set_as_current=False,
    )
    app.conf.task_default_queue = "legacy"
    install(app, {"namespace": "crawjud", "data_dir": str(tmp_path)})
    yield app
    close_app(app)


def _start(command: list[str], folder: Path, name: str) -> tuple[subprocess.Popen[bytes], Path]:
    log = folder / f"{name}.log"
    env = python_env({"PYTHONPATH": python_path(str(folder))})
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, cwd=folder, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    return process, log


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


_WORKER_OPTIONS = ["--pool", "solo", "--without-mingle", "--without-gossip", "-l", "INFO"]


@pytest.mark.parametrize(
    "program",
    [
        pytest.param([sys.executable, "-m", "celery", "-A", "host:app", "worker"], id="celery"),
        pytest.param(
            [sys.executable, "-m", "crawjud_tasks", "--app", "host:app", "worker"],
            id="crawjud-tasks",
        ),
    ],
)
def test_a_plain_worker_of_an_installed_app_consumes_host_and_crawjud_queues(
    program: list[str], host_module: Path, host_app: Celery
) -> None:
    hostname = f"w{len(program)}@install-test"
    process, log = _start([*program, *_WORKER_OPTIONS, "-n", hostname], host_module, "worker")
    try:
        # The CrawJUD ping goes through the CrawJUD default queue: a worker consuming only the
        # host's queue would never answer it.
        assert ping(host_app, timeout=30).hostname == hostname, log.read_text()
        answer = host_app.control.inspect(destination=[hostname], timeout=5).active_queues()
        assert answer is not None
        consumed = {queue["name"] for queue in answer[hostname]}
        assert {"legacy", "crawjud", "crawjud.bots", "crawjud.mail"} <= consumed
        # The host's own tasks still reach it on the host's queue.
        assert host_app.send_task("host.hello").get(timeout=30) == "hello"
    finally:
        _stop(process)
    assert "is not consumed by this worker" not in log.read_text()


def test_a_worker_consuming_no_crawjud_queue_says_which_to_add(
    host_module: Path, host_app: Celery
) -> None:
    command = [sys.executable, "-m", "celery", "-A", "host:app", "worker", "-Q", "legacy"]
    options = [*_WORKER_OPTIONS, "-n", "legacy@install-test"]
    process, log = _start([*command, *options], host_module, "w")
    try:
        wait_for(lambda: "ready." in log.read_text(), timeout=60, what="the worker to start")
    finally:
        _stop(process)
    lines = [line for line in log.read_text().splitlines() if "not consumed" in line]
    for queue in ("crawjud", "crawjud.bots", "crawjud.mail"):
        (line,) = (line for line in lines if f"queue {queue} " in line)
        assert f"-Q {queue}" in line
    assert len(lines) == len({line.split("queue ")[1].split()[0] for line in lines})


def test_a_dedicated_worker_of_one_crawjud_queue_says_nothing(
    host_module: Path, host_app: Celery
) -> None:
    command = [sys.executable, "-m", "celery", "-A", "host:app", "worker", "-Q", "crawjud.mail"]
    options = [*_WORKER_OPTIONS, "-n", "mail@install-test"]
    process, log = _start([*command, *options], host_module, "w")
    try:
        wait_for(lambda: "ready." in log.read_text(), timeout=60, what="the worker to start")
    finally:
        _stop(process)
    assert "not consumed" not in log.read_text()


def test_an_installed_app_with_no_broker_says_which_broker_and_how_to_set_one(
    tmp_path: Path,
) -> None:
    from crawjud_tasks import BrokerUnavailableError

    app = Celery("host", set_as_current=False)  # no broker: Celery's default, AMQP on localhost
    install(app, {"data_dir": str(tmp_path), "broker_connection_timeout": 1})
    try:
        with pytest.raises(BrokerUnavailableError) as caught:
            ping(app, timeout=5)
    finally:
        close_app(app)
    message = str(caught.value)
    assert "None" not in message
    assert "amqp://guest:***@localhost:5672//" in message
    assert "broker_url" in message
    assert "EmbeddedRedis" in message
    assert "\n" not in message
