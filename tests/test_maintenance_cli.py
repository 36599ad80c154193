"""The maintenance and health commands as a user runs them (real subprocesses)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from crawjud_tasks.testing import RedisServer, settings_for
from tests.helpers import run_cli
from tests.test_maintenance_clean import checksum, make

pytestmark = pytest.mark.slow


def env_for(server: RedisServer, tmp_path: Path, root: Path) -> dict[str, str]:
    settings = settings_for(
        server, tmp_path / "data", maintenance={"roots": [str(root)], "grace_period": 60}
    )
    return settings.to_env()


def test_clean_backup_restore_and_hygiene(crawjud_redis: RedisServer, tmp_path: Path) -> None:
    root = tmp_path / "root"
    make(root / "old.log")
    make(root / "new.log", age=10)
    env = env_for(crawjud_redis, tmp_path, root)

    cleaned = run_cli(
        "maintenance", "clean", str(root), "--older-than", "30d", "--pattern", "*.log", env=env
    )
    assert cleaned.returncode == 0, cleaned.stderr
    assert "removed 1 files" in cleaned.stdout
    assert not (root / "old.log").exists()
    assert (root / "new.log").exists()

    crawjud_redis.client(1).set("crawjud:idempotency:t:k", "x", ex=900)
    backed = run_cli("maintenance", "backup", env=env)
    assert backed.returncode == 0, backed.stderr
    archive = backed.stdout.split(" ")[0]
    assert Path(archive).exists()
    crawjud_redis.client().flushall()
    restored = run_cli("maintenance", "restore", archive, env=env)
    assert restored.returncode == 0, restored.stderr
    assert "1 keys" in restored.stdout
    assert crawjud_redis.client(1).ttl("crawjud:idempotency:t:k") > 800  # type: ignore[operator]

    hygiene = run_cli("maintenance", "hygiene", "--dry-run", env=env)
    assert hygiene.returncode == 0, hygiene.stderr
    assert "whole keyspace" in hygiene.stdout


def test_refused_clean_exits_non_zero_with_one_line(
    crawjud_redis: RedisServer, tmp_path: Path
) -> None:
    root = tmp_path / "root"
    root.mkdir()
    sentinel = tmp_path / "sentinel"
    make(sentinel / "a.log")
    before = checksum(sentinel)
    env = env_for(crawjud_redis, tmp_path, root)
    (root / "link").symlink_to(sentinel)
    for target in (str(sentinel), f"{root}/link", f"{root}/../sentinel"):
        result = run_cli("maintenance", "clean", target, "--older-than", "0", env=env)
        assert result.returncode == 1
        assert result.stderr.count("\n") == 1, result.stderr
        assert result.stderr.startswith("Error: ")
    bad = run_cli("maintenance", "clean", str(root), "--older-than", "soon", env=env)
    assert bad.returncode == 2
    assert "30d" in bad.stderr
    assert checksum(sentinel) == before


def test_health_check_exit_status(crawjud_redis: RedisServer, tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    env = env_for(crawjud_redis, tmp_path, root)
    started = time.monotonic()
    result = run_cli("health", "check", env=env)
    assert time.monotonic() - started < 20
    assert result.returncode == 2  # no worker: consumers down
    assert result.stdout.startswith("DOWN")
    assert "consumers" in result.stdout
