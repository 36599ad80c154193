"""A dispatch to an unreachable broker raises BrokerUnavailableError within the timeout."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from celery import Celery

from crawjud_tasks import BrokerUnavailableError, CrawjudTasksError, create_app
from crawjud_tasks.testing import RedisServer, close_app
from tests.examples import contracts as c


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A loopback TCP server that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    server.close()


def _ping_task(app: Celery) -> object:
    return app.tasks["crawjud.ping"].delay()


def _dispatch_error(
    url: str, timeout: float, dispatch: Callable[[Celery], object] = _ping_task
) -> tuple[BrokerUnavailableError, float]:
    app = create_app({"broker_url": url, "broker_connection_timeout": timeout})
    try:
        started = time.monotonic()
        with pytest.raises(BrokerUnavailableError) as info:
            dispatch(app)
        return info.value, time.monotonic() - started
    finally:
        close_app(app)


def test_refused_connection(crawjud_redis_server: RedisServer) -> None:
    from crawjud_tasks._redis_server import free_port

    port = free_port()
    error, elapsed = _dispatch_error(f"redis://:hunter2@127.0.0.1:{port}/0", timeout=3.0)
    assert elapsed < 3.0
    assert isinstance(error, CrawjudTasksError)
    assert isinstance(error, ConnectionError)
    assert f"redis://:***@127.0.0.1:{port}/0" in str(error)
    assert "hunter2" not in str(error)
    assert "Connection refused" in str(error)
    assert error.__cause__ is not None
    # A contract's dispatch (send_task by name, not the registered task) raises it too.
    error, elapsed = _dispatch_error(
        f"redis://127.0.0.1:{port}/0", timeout=3.0, dispatch=lambda app: c.add.using(app).delay(1)
    )
    assert elapsed < 3.0
    assert "Connection refused" in str(error)


def test_missing_unix_socket(crawjud_data_dir: Path) -> None:
    error, elapsed = _dispatch_error(f"redis+socket://{crawjud_data_dir}/none.sock", timeout=3.0)
    assert elapsed < 3.0
    assert "No such file or directory" in str(error)


def test_server_that_never_answers(silent_server: int) -> None:
    error, elapsed = _dispatch_error(f"redis://127.0.0.1:{silent_server}/0", timeout=5.0)
    assert elapsed < 5.0
    assert "did not answer" in str(error)


@pytest.mark.slow
def test_dispatch_works_again_when_the_broker_is_back(
    crawjud_redis: RedisServer, crawjud_data_dir: Path, make_app: Callable[..., Celery]
) -> None:
    from celery.contrib.testing.worker import start_worker

    from crawjud_tasks import ping
    from crawjud_tasks.testing import settings_for

    app = make_app(settings_for(crawjud_redis, crawjud_data_dir, broker_connection_timeout=2.0))
    crawjud_redis.stop(keep_files=True)
    try:
        with pytest.raises(BrokerUnavailableError):
            app.tasks["crawjud.ping"].delay()
    finally:
        crawjud_redis.start()
    with start_worker(app, pool="solo", perform_ping_check=False):
        assert ping(app, timeout=20).version


def test_every_dispatch_path_raises_the_typed_error() -> None:
    """Celery's own paths (send_task, a plain task's delay) raise BrokerUnavailableError too,
    on an app made by create_app and on a host app given to install()."""
    from celery import Celery

    from crawjud_tasks import install
    from crawjud_tasks._redis_server import free_port

    url = f"redis://:hunter2@127.0.0.1:{free_port()}/0"
    made = create_app({"broker_url": url, "broker_connection_timeout": 1.0})
    # The host's own connection settings are kept by install(): no result backend here, whose
    # default reconnection policy would take 20 s.
    host = install(Celery("host", broker=url, set_as_current=False))
    try:
        for app in (made, host):

            @app.task(name="host.plain", shared=False)
            def plain() -> None: ...

            for dispatch in (
                lambda app=app: app.send_task("host.anything", args=(1,)),
                plain.delay,
                lambda app=app: c.add.using(app).delay(1),
            ):
                with pytest.raises(BrokerUnavailableError) as info:
                    dispatch()
                assert "hunter2" not in str(info.value)
                assert "did not answer" in str(info.value)
    finally:
        close_app(made)
        close_app(host)
