"""The FastAPI service of docs/web-service.md, served by uvicorn against a real worker: a bot run
started by an HTTP request, its events streamed as server-sent events."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from celery import Celery

from crawjud_tasks import Settings
from crawjud_tasks._redis_server import free_port
from crawjud_tasks.testing import RedisServer, WorkerProcess, wait_for
from tests.docs_blocks import ROOT, named_block
from tests.helpers import bot_settings, bot_worker, python_env, python_path

pytestmark = pytest.mark.slow


@pytest.fixture
def service_settings(
    crawjud_redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    return bot_settings(crawjud_redis_server, tmp_path_factory, "web")


@pytest.fixture
def service_worker(
    service_settings: Settings, crawjud_redis_server: RedisServer
) -> Iterator[WorkerProcess]:
    from crawjud_tasks import create_app
    from crawjud_tasks.testing import close_app

    host: Celery = create_app(service_settings)
    worker = bot_worker(host, service_settings, crawjud_redis_server, pool="solo", concurrency=1)
    worker.start()
    yield worker
    worker.stop()
    worker.log_path.unlink(missing_ok=True)
    close_app(host)


@pytest.fixture
def service(
    service_settings: Settings, service_worker: WorkerProcess, tmp_path: Path
) -> Iterator[str]:
    """uvicorn serving the documented example, as written in the page."""
    block = named_block(ROOT / "docs" / "web-service.md", "fastapi-service")
    (tmp_path / "service.py").write_text(block.text)
    port = free_port()
    env = python_env({**service_settings.to_env(), "PYTHONPATH": python_path(str(tmp_path))})
    log = tmp_path / "uvicorn.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "service:api", "--host", "127.0.0.1",
             "--port", str(port)],
            cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _answers(base), timeout=60, what=f"uvicorn ({log.read_text()[-500:]})")
        yield base
    finally:
        process.terminate()
        process.wait(timeout=20)


def _answers(base: str) -> bool:
    try:
        return httpx.get(f"{base}/docs", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def test_the_documented_service_starts_a_run_and_streams_its_events(
    service: str, service_worker: WorkerProcess
) -> None:
    with httpx.Client(base_url=service, timeout=30) as client:
        health = client.get("/health").json()
        assert health["worker"] == service_worker.nodename
        rows = [{"NUMERO": "1"}, {"NUMERO": "2", "ACTION": "fail"}, {"NUMERO": "3"}]
        started = client.post("/runs", json={"bot": "test.echo", "user_id": 7, "rows": rows})
        assert started.status_code == 202
        run_id = started.json()["run_id"]
        events: list[dict[str, object]] = []
        with client.stream("GET", f"/runs/{run_id}/events") as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            for line in stream.iter_lines():
                if line.startswith("data: "):
                    events.append(json.loads(line.removeprefix("data: ")))
        kinds = [event["kind"] for event in events]
        assert kinds[0] == "started"
        assert kinds.count("item") == 3
        assert events[-1]["kind"] == "finished"
        assert events[-1]["status"] == "completed_with_errors"
        shown = client.get(f"/runs/{run_id}").json()
        assert shown == {"run_id": run_id, "phase": "completed_with_errors", "done": 3}
