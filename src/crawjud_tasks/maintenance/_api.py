"""The public maintenance operations on an app: each runs here, in the caller's process, under
a lease (one at a time per target), and returns its typed report.

The contracts of :mod:`crawjud_tasks.maintenance.contracts` call these on a worker; the CLI
calls them directly.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import redis

from crawjud_tasks._embedded import EmbeddedRedis
from crawjud_tasks._keys import maintenance_lease_name
from crawjud_tasks._state import app_settings, app_state
from crawjud_tasks.errors import UnknownSyncJobError
from crawjud_tasks.maintenance._backup import RedisSources, write_backup
from crawjud_tasks.maintenance._cleanup import clean_tree
from crawjud_tasks.maintenance._hygiene import hygiene_pass
from crawjud_tasks.maintenance._leases import take_lease
from crawjud_tasks.maintenance._paths import logs_dir, outbox_dir, reports_dir
from crawjud_tasks.maintenance._restore import restore_archive
from crawjud_tasks.maintenance._sync import SyncJob, run_job
from crawjud_tasks.maintenance.contracts import (
    BackupReport,
    CleanReport,
    HygieneReport,
    RestoreReport,
    SyncReport,
)

if TYPE_CHECKING:
    from celery import Celery

    from crawjud_tasks._state import AppState

__all__ = [
    "backup",
    "clean_defaults",
    "clean_files",
    "redis_hygiene",
    "register_sync_job",
    "restore",
    "run_sync",
    "sync_jobs",
]


class MaintenanceState:
    """The maintenance domain's state of one app: its declared sync jobs."""

    def __init__(self, state: AppState) -> None:
        self.lock = state.lock
        self.jobs: dict[str, SyncJob[Any]] = {}


def _target(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", errors="surrogateescape")).hexdigest()[:16]


def clean_files(
    app: Celery,
    root: str | Path,
    pattern: str = "*",
    older_than: float = 30 * 86400.0,
    *,
    keep_last: int = 0,
    max_files: int | None = None,
    dry_run: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> CleanReport:
    """Remove files under ``root`` matching ``pattern`` older than ``older_than`` seconds.

    ``root`` must be inside ``maintenance.roots`` (or one of the library's own folders). Links
    are never followed (a matching link is removed as a link); files changed within
    ``maintenance.grace_period`` and files open for writing are kept. ``keep_last`` keeps the
    newest matching files of each folder; ``max_files`` bounds the removals of one run.

    Raises:
        UnsafePathError: the root, the pattern or a bound is refused (nothing is removed).
        LeaseHeldError: a cleanup of the same root is running.
    """
    settings = app_settings(app)
    with take_lease(app, maintenance_lease_name("clean", _target(str(root)))):
        return clean_tree(
            settings,
            root,
            pattern,
            older_than,
            keep_last=keep_last,
            max_files=max_files,
            dry_run=dry_run,
            progress=progress,
        )


def clean_defaults(app: Celery, *, dry_run: bool = False) -> list[CleanReport]:
    """Clean the library's folders that exist: logs past ``maintenance.log_retention``, reports
    past ``bots.retention`` and outbox files past ``maintenance.outbox_retention``."""
    settings = app_settings(app)
    section = settings.maintenance
    targets = (
        (logs_dir(settings), "*", section.log_retention),
        (reports_dir(settings), "*", settings.bots.retention),
        (outbox_dir(settings), "*.eml", section.outbox_retention),
    )
    return [
        clean_files(app, folder, pattern, age, dry_run=dry_run)
        for folder, pattern, age in targets
        if folder.is_dir()
    ]


def _same_database(one: redis.Redis, other: redis.Redis) -> bool:
    def where(client: redis.Redis) -> tuple[Any, ...]:
        kwargs: Any = client.connection_pool.connection_kwargs
        return (kwargs.get("host"), kwargs.get("port"), kwargs.get("path"), kwargs.get("db", 0))

    return where(one) == where(other)


def _is_embedded(app: Celery, client: redis.Redis) -> bool:
    path: Any = client.connection_pool.connection_kwargs.get("path")
    socket = EmbeddedRedis(app_settings(app).resolved_data_dir).socket_path
    return path is not None and Path(path) == socket


@contextlib.contextmanager
def _sources(app: Celery, redis_url: str | None) -> Generator[RedisSources, None, None]:
    """The Redis to read or write keys: ``redis_url``'s (closed afterwards), else the app's."""
    if redis_url is not None:
        client: redis.Redis = redis.Redis.from_url(redis_url)  # pyright: ignore[reportUnknownMemberType]  (redis-py leaves **kwargs unannotated)
        with contextlib.closing(client):
            yield RedisSources(client, None, embedded=False)
        return
    state = app_state(app)
    library = state.redis
    broker = state.link.broker
    if broker is not None and _same_database(library, broker):
        broker = None
    yield RedisSources(library, broker, embedded=_is_embedded(app, library))


def backup(
    app: Celery,
    *,
    to: str | Path | None = None,
    redis_url: str | None = None,
    snapshot: bool | None = None,
) -> BackupReport:
    """Write one backup archive and apply the retention rule (see "Maintenance").

    Args:
        app: Whose keys (under its namespace) and folders to back up.
        to: The folder to write into (inside the roots); default ``maintenance.backup_dir``.
        redis_url: Back up the keys of this Redis instead of the app's (any Redis).
        snapshot: Add the embedded Redis's snapshot (default: when it is the embedded one).

    Raises:
        UnsafePathError: ``to`` or a configured folder is refused.
        BackupError: the archive could not be written; older backups are kept.
        BrokerUnavailableError: Redis did not answer.
        LeaseHeldError: another backup is running.
    """
    settings = app_settings(app)
    with (
        _sources(app, redis_url) as sources,
        take_lease(app, maintenance_lease_name("backup")),
        app_state(app).redis_errors(),
    ):
        return write_backup(settings, sources, to=to, take_snapshot=snapshot)


def restore(
    app: Celery,
    archive: str | Path,
    *,
    target: str | Path | None = None,
    redis: bool = True,
    replace: bool = False,
    redis_url: str | None = None,
) -> RestoreReport:
    """Verify ``archive`` against its checksum and restore it.

    Args:
        app: Whose Redis receives the keys.
        archive: A backup archive inside the roots, with its ``.sha256`` beside it.
        target: The folder (inside the roots) that receives the backed-up folders and the
            snapshot; ``None`` restores no files.
        redis: Restore the keys, with their TTLs.
        replace: Overwrite keys and files that exist (default: leave them as they are).
        redis_url: Restore the keys into this Redis instead of the app's.

    Raises:
        UnsafePathError: the archive or the target is outside the roots, or through a link.
        ArchiveError: the checksum does not match, or a member is refused (nothing restored).
        LeaseHeldError: another restore is running.
    """
    settings = app_settings(app)
    with (
        _sources(app, redis_url) as sources,
        take_lease(app, maintenance_lease_name("restore")),
        app_state(app).redis_errors(),
    ):
        clients: dict[str, Any] | None = None
        if redis:
            clients = {"library": sources.library}
            if sources.broker is not None:
                clients["broker"] = sources.broker
        return restore_archive(settings, clients, archive, target=target, replace=replace)


def redis_hygiene(
    app: Celery, *, dry_run: bool = False, budget: float | None = None
) -> HygieneReport:
    """One Redis hygiene pass within ``budget`` seconds (default ``maintenance.hygiene_budget``).

    Raises:
        BrokerUnavailableError: Redis did not answer.
        LeaseHeldError: another pass is running.
    """
    state = app_state(app)
    cursors = (state.keys.hygiene_cursor("cursor"), state.keys.hygiene_cursor("replies"))
    with take_lease(app, maintenance_lease_name("hygiene")), state.redis_errors():
        return hygiene_pass(
            state.settings,
            state.redis,
            state.link.broker,
            cursor_keys=cursors,
            dry_run=dry_run,
            budget=budget,
        )


def register_sync_job(app: Celery, job: SyncJob[Any]) -> SyncJob[Any]:
    """Declare ``job`` on ``app`` (in the worker's process, and the CLI's); return it."""
    domain = app_state(app).domain(MaintenanceState)
    with domain.lock:
        domain.jobs[job.name] = job
    return job


def sync_jobs(app: Celery) -> dict[str, SyncJob[Any]]:
    """The sync jobs declared on ``app``, by name."""
    domain = app_state(app).domain(MaintenanceState)
    with domain.lock:
        return dict(domain.jobs)


def run_sync(app: Celery, name: str) -> SyncReport:
    """Run the sync job ``name`` once (one run at a time; see "Maintenance").

    Raises:
        UnknownSyncJobError: no job has that name on this app.
        LeaseHeldError: a run of the job is going on.
        LeaseLostError: the run lost its lease; its last checkpoint stays for the next run.
    """
    job = sync_jobs(app).get(name)
    if job is None:
        known = ", ".join(sorted(sync_jobs(app))) or "none"
        msg = f"no sync job named {name!r} on this app (declared: {known}); register_sync_job() it"
        raise UnknownSyncJobError(msg)
    state = app_state(app)
    with take_lease(app, maintenance_lease_name("sync", name)) as held, state.redis_errors():
        return run_job(job, state.redis, held, state.keys.sync_state(name))
