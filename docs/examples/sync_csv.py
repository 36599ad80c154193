"""A data synchronisation job: a folder of CSV files (id, updated_at, name) into SQLite.

Register it on the worker's app (and on the app the CLI loads)::

    from crawjud_tasks.maintenance import register_sync_job

    register_sync_job(app, csv_to_sqlite("people", Path("/srv/in"), Path("/srv/people.db")))

then run it with ``crawjud-tasks --app host.tasks:app maintenance sync people``, or dispatch
``crawjud_tasks.maintenance.contracts.sync`` from a schedule.
"""

from __future__ import annotations

import csv
import datetime as dt
import sqlite3
from collections.abc import Sequence
from pathlib import Path

from crawjud_tasks.maintenance import SyncJob

#: (id, updated_at as ISO 8601 with its offset, name)
Row = tuple[str, str, str]


def csv_to_sqlite(name: str, folder: Path, database: Path, page_size: int = 500) -> SyncJob[Row]:
    """A job that upserts every CSV row changed at or after the watermark into ``people``."""

    def fetch(since: dt.datetime | None, page: int) -> list[Row]:
        rows: list[Row] = []
        for path in sorted(folder.glob("*.csv")):
            with path.open(newline="", encoding="utf-8") as file:
                for record in csv.DictReader(file):
                    changed = dt.datetime.fromisoformat(record["updated_at"])
                    if since is None or changed >= since:  # >=: rows at the watermark again
                        rows.append((record["id"], record["updated_at"], record["name"]))
        rows.sort(key=lambda row: (dt.datetime.fromisoformat(row[1]), row[0]))  # a stable order
        return rows[page * page_size : (page + 1) * page_size]

    def upsert(rows: Sequence[Row]) -> None:
        with sqlite3.connect(database) as db:  # one transaction per call
            db.execute(
                "CREATE TABLE IF NOT EXISTS people "
                "(id TEXT PRIMARY KEY, updated_at TEXT NOT NULL, name TEXT NOT NULL)"
            )
            db.executemany(
                "INSERT INTO people VALUES (?, ?, ?) ON CONFLICT(id) DO UPDATE "
                "SET updated_at = excluded.updated_at, name = excluded.name",
                rows,
            )

    return SyncJob(
        name=name,
        fetch=fetch,
        upsert=upsert,
        timestamp=lambda row: dt.datetime.fromisoformat(row[1]),
        page_size=page_size,
    )
