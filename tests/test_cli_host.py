"""The command line as a new host uses it: refused runs are refused before dispatch, notifications
name people, and mail send-test says what happened."""

from __future__ import annotations

import base64
import json
import socket
from pathlib import Path

import pytest

from crawjud_tasks.testing import RedisServer, settings_for
from tests.helpers import run_cli

pytestmark = pytest.mark.slow


def _env(server: RedisServer, data: Path, **changes: object) -> dict[str, str]:
    return settings_for(server, data, **changes).to_env()


def _queued_bodies(server: RedisServer) -> list[dict[str, object]]:
    """The JSON bodies of the messages waiting in the ``crawjud.bots`` queue."""
    client = server.client(0)
    try:
        raw: list[bytes] = client.lrange("crawjud.bots", 0, -1)  # type: ignore[assignment]
    finally:
        client.close()
    bodies = []
    for entry in raw:
        envelope = json.loads(entry)
        bodies.append(json.loads(base64.b64decode(envelope["body"])))
    return bodies


def test_run_refuses_an_input_outside_allowed_roots_before_dispatching(
    crawjud_redis: RedisServer, tmp_path: Path
) -> None:
    items = tmp_path / "items.csv"
    items.write_text("NOME\nana\n")
    out = run_cli("run", "test.echo", "--input", str(items), env=_env(crawjud_redis, tmp_path))
    assert out.returncode == 1, out.stdout + out.stderr
    assert "bots.allowed_roots" in out.stderr
    assert "CRAWJUD_TASKS_BOTS__ALLOWED_ROOTS" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    assert _queued_bodies(crawjud_redis) == []


def test_run_sends_the_user_name_and_cancel_names_who_cancelled(
    crawjud_redis: RedisServer, tmp_path: Path
) -> None:
    items = tmp_path / "items.csv"
    items.write_text("NOME\nana\n")
    env = _env(crawjud_redis, tmp_path, bots={"allowed_roots": [str(tmp_path)]})
    out = run_cli(
        "run", "test.echo", "--input", str(items), "--user", "7", "--user-name", "Ana Lima",
        "--run-id", "named-run", "--detach", env=env,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    [body] = _queued_bodies(crawjud_redis)
    args: list[object] = body[0]  # type: ignore[index,assignment]
    assert args[1] == 7
    assert args[2]["user_name"] == "Ana Lima"  # type: ignore[index]
    cancelled = run_cli("runs", "cancel", "named-run", "--by", "Maria", env=env)
    assert cancelled.returncode == 0, cancelled.stdout + cancelled.stderr
    client = crawjud_redis.client(1)
    try:
        assert client.get("crawjud:run:named-run:cancel") == b"Maria"
    finally:
        client.close()


def test_mail_send_test_to_an_unreachable_server_does_not_promise_a_retry(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {
        "CRAWJUD_TASKS_DATA_DIR": str(tmp_path),
        "CRAWJUD_TASKS_MAIL__HOST": "127.0.0.1",
        "CRAWJUD_TASKS_MAIL__PORT": str(port),
        "CRAWJUD_TASKS_MAIL__TIMEOUT": "2",
    }
    out = run_cli("mail", "send-test", "ana@example.org", env=env)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "retried" not in out.stderr
    assert "not sent" in out.stderr
    assert f"127.0.0.1:{port}" in out.stderr
    assert "does not retry" in out.stderr


def test_mail_help_lists_send_test() -> None:
    out = run_cli("mail", "--help")
    assert out.returncode == 0
    assert "send-test" in out.stdout
    summary = out.stdout.split("Options:")[0]
    assert "send a test message" in summary
