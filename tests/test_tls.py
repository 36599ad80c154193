"""rediss:// checks certificates by default: a real TLS endpoint (tests/tls_proxy.py) in front of
the test's real Redis, a real worker process."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import trustme
from celery import Celery
from redbeat.schedulers import get_redis

from crawjud_tasks import BrokerUnavailableError, Settings, ping
from crawjud_tasks._state import app_state
from crawjud_tasks.testing import RedisServer, WorkerProcess
from tests.tls_proxy import TlsProxy

pytestmark = pytest.mark.slow


@pytest.fixture
def ca() -> trustme.CA:
    """A certificate authority that no system store trusts."""
    return trustme.CA()


@pytest.fixture
def proxy(crawjud_redis: RedisServer, ca: trustme.CA) -> Iterator[TlsProxy]:
    with TlsProxy(crawjud_redis.port, ca) as tls:
        yield tls


def _config(data_dir: Path, broker: str, backend: str, **more: Any) -> dict[str, Any]:
    return {
        "broker_url": broker,
        "result_backend": backend,
        "data_dir": str(data_dir),
        "broker_connection_timeout": 2.0,
        **more,
    }


def test_an_untrusted_certificate_receives_no_byte(
    proxy: TlsProxy,
    crawjud_redis: RedisServer,
    crawjud_data_dir: Path,
    make_app: Callable[..., Celery],
) -> None:
    secure = f"rediss://:hunter2@127.0.0.1:{proxy.port}"
    plain = f"redis://127.0.0.1:{crawjud_redis.port}"
    # The broker over TLS (the backend plain), then the backend over TLS (the broker plain).
    for broker, backend in ((f"{secure}/0", f"{plain}/1"), (f"{plain}/0", f"{secure}/1")):
        app = make_app(_config(crawjud_data_dir, broker, backend))
        attempts = proxy.attempts
        with pytest.raises(BrokerUnavailableError) as info:
            app.send_task("crawjud.nothing")
        assert "hunter2" not in str(info.value)
        assert proxy.attempts > attempts  # it did try the TLS endpoint
    # The library's own client, and Beat's (RedBeat).
    app = make_app(_config(crawjud_data_dir, f"{secure}/0", f"{secure}/1"))
    state = app_state(app)
    with pytest.raises(BrokerUnavailableError), state.redis_errors():
        state.redis.ping()
    with pytest.raises(redis.ConnectionError):
        get_redis(app).ping()
    assert proxy.attempts >= 4
    assert proxy.handshakes == 0
    assert bytes(proxy.received) == b""  # no AUTH, no password, nothing


def test_a_task_round_trip_over_tls_with_the_ca_file(
    proxy: TlsProxy,
    ca: trustme.CA,
    crawjud_data_dir: Path,
    make_app: Callable[..., Celery],
) -> None:
    ca_file = crawjud_data_dir / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    secure = f"rediss://127.0.0.1:{proxy.port}"
    settings = Settings.from_mapping(
        _config(
            crawjud_data_dir,
            f"{secure}/0",
            f"{secure}/1",
            tls={"ca_file": str(ca_file)},
            broker_connection_timeout=5.0,
        )
    )
    assert settings.to_env()["CRAWJUD_TASKS_TLS__CA_FILE"] == str(ca_file)
    app = make_app(settings)
    # A real worker process, given the settings through CRAWJUD_TASKS_* variables.
    with WorkerProcess(app, settings=settings):
        answer = ping(app, timeout=30)
    assert answer.version
    state = app_state(app)
    with state.redis_errors():
        assert state.redis.ping()
    assert get_redis(app).ping()
    assert proxy.handshakes >= 3
    assert b"crawjud.ping" in proxy.received


def test_turning_verification_off_is_explicit_and_logged_once(
    proxy: TlsProxy,
    crawjud_data_dir: Path,
    make_app: Callable[..., Celery],
    caplog: pytest.LogCaptureFixture,
) -> None:
    secure = f"rediss://127.0.0.1:{proxy.port}"
    for config in (
        _config(crawjud_data_dir, f"{secure}/0", f"{secure}/1", tls={"verify": False}),
        _config(
            crawjud_data_dir, f"{secure}/0?ssl_cert_reqs=none", f"{secure}/1?ssl_cert_reqs=none"
        ),
    ):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="crawjud_tasks"):
            app = make_app(config)
            for _ in range(2):
                app.send_task("crawjud.nothing", ignore_result=True)
                state = app_state(app)
                with state.redis_errors():
                    assert state.redis.ping()
        warnings = [r for r in caplog.records if "are NOT checked" in r.getMessage()]
        assert len(warnings) == 1, [r.getMessage() for r in caplog.records]
        assert f"127.0.0.1:{proxy.port}/0" in warnings[0].getMessage()
        assert warnings[0].levelno == logging.WARNING
    assert proxy.handshakes >= 4
    assert b"crawjud.nothing" in proxy.received
