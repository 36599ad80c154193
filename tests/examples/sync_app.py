"""The app the sync tests' CLI runs load: the docs' CSV-to-SQLite job, with a kill switch.

``SYNC_KILL_PAGE=n`` kills this process (SIGKILL) halfway through upserting page ``n``; every
page fetched is noted in ``SYNC_LOG``.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import os
import signal
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from crawjud_tasks import create_app
from crawjud_tasks.maintenance import SyncJob, register_sync_job

_SPEC = importlib.util.spec_from_file_location(
    "sync_csv", Path(__file__).parents[2] / "docs" / "examples" / "sync_csv.py"
)
assert _SPEC is not None and _SPEC.loader is not None
sync_csv: Any = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(sync_csv)

app = create_app()
_job = sync_csv.csv_to_sqlite(
    "people", Path(os.environ["SYNC_FOLDER"]), Path(os.environ["SYNC_DB"]), page_size=50
)
_kill_page = int(os.environ.get("SYNC_KILL_PAGE", "-1"))
_page = [-1]


def _fetch(since: dt.datetime | None, page: int) -> Any:
    _page[0] = page
    with open(os.environ["SYNC_LOG"], "a", encoding="utf-8") as log:
        log.write(f"{os.getpid()} {page}\n")
    return _job.fetch(since, page)


def _upsert(rows: Sequence[Any]) -> None:
    if _page[0] != _kill_page:
        _job.upsert(rows)
        return
    _job.upsert(rows[: len(rows) // 2])
    os.kill(os.getpid(), signal.SIGKILL)


register_sync_job(
    app,
    SyncJob(name="people", fetch=_fetch, upsert=_upsert, timestamp=_job.timestamp, page_size=50),
)
