"""Data synchronisation jobs: a host's ``fetch``/``upsert`` pair run with a watermark in Redis.

A run reads rows changed at or after ``watermark - overlap``, page by page, and upserts them.
After each page a checkpoint (the run's ``since``, the next page, the newest timestamp seen) is
written; a run that stops (its worker killed) is resumed from the checkpoint by the next one.
The watermark moves only when a run ends, to the newest timestamp it saw. Every write is fenced
by the run's lease: a Lua script writes only while the lease key still holds this holder's
token, so a run that lost its lease (a stalled worker whose lease was taken over) commits
nothing. Rows sharing the watermark's timestamp are fetched again by the next run (``>=``),
so none is lost; ``upsert`` must therefore be idempotent (an upsert by the row's key).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from crawjud_tasks.errors import LeaseLostError, SettingsError
from crawjud_tasks.maintenance.contracts import SyncReport

if TYPE_CHECKING:
    import redis

    from crawjud_tasks._lease import Lease

__all__ = ["SyncJob", "run_job"]

Row = TypeVar("Row")

#: Write fields of KEYS[2] (ARGV[3..2+2n]) and delete others (the rest) while KEYS[1] holds
#: ARGV[1]; ARGV[2] is n. Returns 0 when the lease is no longer this holder's.
_FENCED = """
if redis.call('get', KEYS[1]) ~= ARGV[1] then
  return 0
end
local n = tonumber(ARGV[2])
if n > 0 then
  redis.call('hset', KEYS[2], unpack(ARGV, 3, 2 + 2 * n))
end
if #ARGV > 2 + 2 * n then
  redis.call('hdel', KEYS[2], unpack(ARGV, 3 + 2 * n))
end
return 1
"""
_CHECKPOINT = ("checkpoint_since", "checkpoint_page", "checkpoint_newest", "checkpoint_rows")


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class SyncJob(Generic[Row]):
    """A data synchronisation job a host declares (see "Maintenance" in the docs).

    Attributes:
        name: The job's name (letters, digits, ``_``, ``-``, ``.``).
        fetch: ``fetch(since, page)``: the rows changed at or after ``since`` (``None``: all),
            ordered by timestamp then by a stable key, page ``page`` (from 0) of ``page_size``
            rows. A page shorter than ``page_size`` is the last.
        upsert: Writes rows to the destination; idempotent (insert or update by key).
        timestamp: A row's change time (timezone-aware).
        page_size: Rows per page.
        overlap: How far before the watermark each run reads again.
    """

    name: str
    fetch: Callable[[dt.datetime | None, int], Sequence[Row]]
    upsert: Callable[[Sequence[Row]], None]
    timestamp: Callable[[Row], dt.datetime]
    page_size: int = 500
    overlap: dt.timedelta = dt.timedelta(0)

    def __post_init__(self) -> None:
        if not self.name or not all(c.isalnum() or c in "_-." for c in self.name):
            msg = f"a sync job name is letters, digits, '_', '-' and '.', got {self.name!r}"
            raise SettingsError(msg)
        if self.page_size < 1 or self.overlap < dt.timedelta(0):
            msg = f"sync job {self.name!r}: page_size must be 1 or more and overlap 0 or more"
            raise SettingsError(msg)


def _iso(value: dt.datetime | None) -> str:
    return "" if value is None else value.isoformat()


def _parse(value: bytes | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value.decode()) if value else None


class _Fenced:
    """Writes to the job's hash, only while the lease is this run's."""

    def __init__(self, client: redis.Redis, run_lease: Lease, state_key: str) -> None:
        self.script = client.register_script(_FENCED)
        self.lease = run_lease
        self.state_key = state_key

    def write(self, fields: dict[str, str], delete: tuple[str, ...] = ()) -> None:
        token = self.lease.token
        args: list[Any] = [token or b"", len(fields)]
        for name, value in fields.items():
            args += [name, value]
        args += list(delete)
        written: Any = self.script(keys=[self.lease.redis_key, self.state_key], args=args)
        if not written:
            msg = f"sync run lost its lease {self.lease.key!r}; nothing more was committed"
            raise LeaseLostError(msg)


def run_job(job: SyncJob[Any], client: redis.Redis, run_lease: Lease, state_key: str) -> SyncReport:
    """Run ``job`` once under ``run_lease`` (held), keeping its state in ``state_key``.

    Raises:
        LeaseLostError: the lease was lost; the checkpoint of the last committed page stays.
    """
    fenced = _Fenced(client, run_lease, state_key)
    raw: Any = client.hgetall(state_key)
    state: dict[bytes, bytes] = raw
    watermark = _parse(state.get(b"watermark"))
    resumed = b"checkpoint_page" in state
    if resumed:
        since = _parse(state.get(b"checkpoint_since"))
        page = int(state[b"checkpoint_page"])
        newest = _parse(state.get(b"checkpoint_newest"))
        rows_before = int(state.get(b"checkpoint_rows", b"0"))
    else:
        since = None if watermark is None else watermark - job.overlap
        page, newest, rows_before = 0, watermark, 0
    rows = pages = 0
    while True:
        run_lease.check()
        batch = job.fetch(since, page)
        if batch:
            job.upsert(batch)
            latest = max(job.timestamp(row) for row in batch)
            newest = latest if newest is None else max(newest, latest)
            rows += len(batch)
        pages += 1
        page += 1
        if len(batch) < job.page_size:
            break
        fenced.write(
            {
                "checkpoint_since": _iso(since),
                "checkpoint_page": str(page),
                "checkpoint_newest": _iso(newest),
                "checkpoint_rows": str(rows_before + rows),
            }
        )
    now = dt.datetime.now(dt.timezone.utc)
    lag = None if newest is None else max(0.0, (now - newest).total_seconds())
    total = int(state.get(b"rows_total", b"0")) + rows_before + rows
    fenced.write(
        {
            "watermark": _iso(newest),
            "last_run_at": now.isoformat(),
            "last_rows": str(rows_before + rows),
            "rows_total": str(total),
            "lag": "" if lag is None else f"{lag:.3f}",
        },
        delete=_CHECKPOINT,
    )
    return SyncReport(
        name=job.name,
        rows=rows,
        pages=pages,
        watermark=None if newest is None else newest.isoformat(),
        lag=lag,
        resumed=resumed,
    )
