"""Data synchronisation jobs against a real Redis and real files: the docs' CSV-to-SQLite job,
killed mid-page, resumes without losing or duplicating a row; the watermark is fenced."""

from __future__ import annotations

import csv
import datetime as dt
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from celery.worker import WorkController

from crawjud_tasks import Settings, create_app
from crawjud_tasks._app import close_app
from crawjud_tasks._state import app_state
from crawjud_tasks.errors import LeaseLostError, UnknownSyncJobError
from crawjud_tasks.maintenance import SyncJob, SyncReport, register_sync_job, run_sync
from crawjud_tasks.maintenance.contracts import sync
from crawjud_tasks.testing import RedisServer, settings_for
from tests.helpers import ROOT, run_cli

pytestmark = pytest.mark.slow

BASE = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)


def write_csv(path: Path, rows: list[tuple[str, dt.datetime, str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(["id", "updated_at", "name"])
        for key, when, name in rows:
            writer.writerow([key, when.isoformat(), name])


def people(database: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(database) as db:
        return db.execute("SELECT id, name FROM people ORDER BY id").fetchall()


@pytest.fixture
def settings(crawjud_redis: RedisServer, tmp_path: Path) -> Settings:
    return settings_for(crawjud_redis, tmp_path / "data")


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """1,000 rows in three files; every 7 rows share one timestamp."""
    folder = tmp_path / "in"
    folder.mkdir()
    rows = [(f"p{i:04d}", BASE + dt.timedelta(seconds=i // 7), f"name {i}") for i in range(1000)]
    for part in range(3):
        write_csv(folder / f"part{part}.csv", rows[part::3])
    return folder


def cli_sync(settings: Settings, tmp_path: Path, folder: Path, **env: str) -> Any:
    return run_cli(
        "--app",
        "tests.examples.sync_app:app",
        "maintenance",
        "sync",
        "people",
        env={
            **settings.to_env(),
            "PYTHONPATH": str(ROOT),
            "SYNC_FOLDER": str(folder),
            "SYNC_DB": str(tmp_path / "people.db"),
            "SYNC_LOG": str(tmp_path / "fetches.log"),
            **env,
        },
    )


def test_killed_mid_page_resumes_without_losing_or_duplicating_rows(
    settings: Settings, crawjud_redis: RedisServer, tmp_path: Path, folder: Path
) -> None:
    killed = cli_sync(settings, tmp_path, folder, SYNC_KILL_PAGE="6")
    assert killed.returncode == -9, killed.stderr
    state = crawjud_redis.client(1).hgetall("crawjud:maintenance:sync:people")
    assert state[b"checkpoint_page"] == b"6"  # pages 0-5 committed, page 6 half written
    assert b"watermark" not in state
    assert 300 < len(people(tmp_path / "people.db")) < 350

    resumed = cli_sync(settings, tmp_path, folder)
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed from its checkpoint" in resumed.stdout
    log = (tmp_path / "fetches.log").read_text().split("\n")
    second = [line.split()[1] for line in log if line and int(line.split()[0]) != killed_pid(log)]
    assert second[0] == "6"  # the killed page again, not page 0
    rows = people(tmp_path / "people.db")
    assert [key for key, _ in rows] == [f"p{i:04d}" for i in range(1000)]

    # Rows sharing the watermark's timestamp that arrive later are not lost.
    last = BASE + dt.timedelta(seconds=999 // 7)
    write_csv(folder / "late.csv", [("late1", last, "late"), ("late2", last, "late")])
    again = cli_sync(settings, tmp_path, folder)
    assert again.returncode == 0, again.stderr
    rows = people(tmp_path / "people.db")
    assert len(rows) == 1002
    assert len({key for key, _ in rows}) == 1002
    state = crawjud_redis.client(1).hgetall("crawjud:maintenance:sync:people")
    assert state[b"watermark"] == last.isoformat().encode()
    assert int(state[b"rows_total"]) >= 1002
    assert float(state[b"lag"]) > 0


def killed_pid(log: list[str]) -> int:
    return int(log[0].split()[0])


@pytest.fixture
def app(settings: Settings) -> Iterator[Celery]:
    made = create_app(settings)
    yield made
    close_app(made)


def test_a_run_that_lost_its_lease_commits_nothing(app: Celery) -> None:
    client = app_state(app).redis
    rows = [(f"r{i}", BASE + dt.timedelta(seconds=i)) for i in range(30)]
    written: list[Any] = []

    def fetch(since: dt.datetime | None, page: int) -> Sequence[Any]:
        if page == 2:  # another holder takes the lease over meanwhile
            client.set("crawjud:lease:maintenance:sync:steal", "other-token other:1", ex=60)
        return rows[page * 10 : (page + 1) * 10]

    register_sync_job(
        app,
        SyncJob(
            name="steal",
            fetch=fetch,
            upsert=written.extend,
            timestamp=lambda row: row[1],
            page_size=10,
        ),
    )
    with pytest.raises(LeaseLostError):
        run_sync(app, "steal")
    state: Any = client.hgetall(app_state(app).keys.sync_state("steal"))
    assert state[b"checkpoint_page"] == b"2"  # pages 0 and 1 committed while it held the lease
    assert b"watermark" not in state


def test_unknown_job_is_refused_with_the_known_names(app: Celery) -> None:
    register_sync_job(
        app,
        SyncJob(name="known", fetch=lambda s, p: [], upsert=lambda rows: None, timestamp=id),  # type: ignore[arg-type]
    )
    with pytest.raises(UnknownSyncJobError, match="declared: known"):
        run_sync(app, "missing")


def test_job_names_and_sizes_are_checked() -> None:
    from crawjud_tasks.errors import SettingsError

    with pytest.raises(SettingsError, match="letters, digits"):
        SyncJob(name="a b", fetch=lambda s, p: [], upsert=lambda rows: None, timestamp=id)  # type: ignore[arg-type]
    with pytest.raises(SettingsError, match="page_size"):
        SyncJob(name="ok", fetch=lambda s, p: [], upsert=print, timestamp=id, page_size=0)  # type: ignore[arg-type]


def test_dispatching_the_contract_runs_the_job_on_a_worker(
    crawjud_app: Celery, crawjud_worker: WorkController
) -> None:
    rows = [(f"r{i}", BASE + dt.timedelta(seconds=i)) for i in range(25)]
    written: list[Any] = []
    register_sync_job(
        crawjud_app,
        SyncJob(
            name="memory",
            fetch=lambda since, page: rows[page * 10 : (page + 1) * 10],
            upsert=written.extend,
            timestamp=lambda row: row[1],
            page_size=10,
        ),
    )
    report = sync.using(crawjud_app).delay("memory").get(timeout=30)
    assert isinstance(report, SyncReport)
    assert (report.rows, report.pages, report.resumed) == (25, 3, False)
    assert report.watermark == rows[-1][1].isoformat()
    assert written == rows
