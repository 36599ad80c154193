"""The maintenance contracts and their typed reports: what a host or a schedule dispatches.

Cheap to import. Every task is routed to the ``<namespace>.maintenance`` queue and runs under a
lease, one at a time per target (a second copy is refused with
:class:`~crawjud_tasks.errors.LeaseHeldError`).

Example::

    from crawjud_tasks.maintenance.contracts import clean_files

    report = clean_files.delay("/srv/crawjud/logs", "*.log", 30 * 86400.0).get(timeout=60)
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from crawjud_tasks._contracts import task_contract

__all__ = [
    "BackupReport",
    "CheckResult",
    "CleanReport",
    "HealthReport",
    "HealthStatus",
    "HygieneReport",
    "RestoreReport",
    "SkippedPath",
    "SyncReport",
    "backup",
    "clean_defaults",
    "clean_files",
    "health_check",
    "redis_hygiene",
    "restore",
    "sync",
]

#: ``ok`` < ``degraded`` < ``down``.
HealthStatus = Literal["ok", "degraded", "down"]


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class SkippedPath:
    """A path a maintenance task left alone, and why."""

    path: str
    reason: str


def _skipped() -> list[SkippedPath]:
    return []


def _counts() -> dict[str, int]:
    return {}


def _names() -> list[str]:
    return []


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class CleanReport:
    """What a cleanup removed (or would remove, with ``dry_run``) under one root."""

    root: str
    pattern: str
    dry_run: bool
    #: Files (and links, removed as links) removed.
    files: int = 0
    #: Their bytes.
    bytes: int = 0
    #: Skipped paths by reason (``open for writing``, ``changed within the grace period``...).
    skipped_counts: dict[str, int] = dataclasses.field(default_factory=_counts)
    #: The first skipped paths, with their reasons (at most 100).
    skipped: list[SkippedPath] = dataclasses.field(default_factory=_skipped)
    #: True when ``max_files`` stopped the cleanup before it went through the whole tree.
    truncated: bool = False


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class BackupReport:
    """One backup archive, written and verified."""

    #: The archive's path; its sha256 is in ``<path>.sha256``.
    path: str
    sha256: str
    bytes: int
    #: The library's Redis keys dumped, with their TTLs.
    keys: int
    #: Whether a snapshot (RDB) of the embedded Redis is in the archive.
    snapshot: bool
    #: Files copied from the configured folders.
    files: int
    #: Older backups removed by the retention rule.
    removed: list[str] = dataclasses.field(default_factory=_names)
    #: Paths of the folders left out (links, special files), with the reason.
    skipped: list[SkippedPath] = dataclasses.field(default_factory=_skipped)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class RestoreReport:
    """What a restore put back."""

    archive: str
    #: Keys restored into Redis (with their TTLs).
    keys: int
    #: Keys left as they were because they exist (restore with ``replace`` to overwrite).
    keys_existing: int
    #: Files and links written under ``target``.
    files: int
    #: The folder files were restored into (``None``: none were).
    target: str | None
    #: Where the embedded Redis snapshot was written (load it with the server stopped).
    snapshot: str | None


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class HygieneReport:
    """One Redis hygiene pass."""

    dry_run: bool
    #: Keys looked at.
    scanned: int
    #: Keys unlinked (orphans, keys past their retention).
    unlinked: int
    #: Keys given the TTL their family should have.
    expired: int
    #: Whether the scan went through the whole keyspace (else the next pass goes on).
    complete: bool
    seconds: float
    #: Bytes used by the keys seen, by key family (``run``, ``idempotency``...).
    memory: dict[str, int] = dataclasses.field(default_factory=_counts)
    #: Keys seen, by key family.
    keys: dict[str, int] = dataclasses.field(default_factory=_counts)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class CheckResult:
    """One check of a health report."""

    name: str
    status: HealthStatus
    #: What was seen, in a few words (``"2.1 ms"``, ``"no consumer on crawjud.mail"``).
    detail: str
    seconds: float


def _checks() -> list[CheckResult]:
    return []


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class HealthReport:
    """The health of a deployment: the worst status of its checks, and each check."""

    status: HealthStatus
    checks: list[CheckResult] = dataclasses.field(default_factory=_checks)
    seconds: float = 0.0
    #: Whether an ``alert`` mail was dispatched for this report.
    alerted: bool = False


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class SyncReport:
    """One run of a data synchronisation job."""

    name: str
    #: Rows upserted by this run (a resumed run counts from its checkpoint).
    rows: int
    pages: int
    #: The committed watermark (ISO 8601), ``None`` if the job never saw a row.
    watermark: str | None
    #: Seconds between the watermark and the end of the run.
    lag: float | None
    #: Whether this run went on from a checkpoint left by a run that stopped.
    resumed: bool


@task_contract("maintenance.clean_files")
def clean_files(
    root: str,
    pattern: str,
    older_than: float,
    *,
    keep_last: int = 0,
    max_files: int | None = None,
    dry_run: bool = False,
) -> CleanReport:
    """Remove files matching ``pattern`` older than ``older_than`` seconds under ``root``."""
    raise NotImplementedError


@task_contract("maintenance.clean_defaults")
def clean_defaults(dry_run: bool = False) -> list[CleanReport]:
    """Clean the library's own folders: logs, reports past ``bots.retention``, the outbox."""
    raise NotImplementedError


@task_contract("maintenance.backup")
def backup(to: str | None = None) -> BackupReport:
    """Write one backup archive (Redis keys, embedded snapshot, folders) and apply retention."""
    raise NotImplementedError


@task_contract("maintenance.restore")
def restore(
    archive: str, target: str | None = None, redis: bool = True, replace: bool = False
) -> RestoreReport:
    """Verify and restore a backup archive: its keys into Redis, its files under ``target``."""
    raise NotImplementedError


@task_contract("maintenance.redis_hygiene")
def redis_hygiene(dry_run: bool = False) -> HygieneReport:
    """One time-budgeted pass over the library's Redis keys (see "Maintenance")."""
    raise NotImplementedError


@task_contract("maintenance.health_check")
def health_check() -> HealthReport:
    """Check the deployment's health within ``maintenance.health_timeout`` seconds."""
    raise NotImplementedError


@task_contract("maintenance.sync")
def sync(name: str) -> SyncReport:
    """Run the host's data synchronisation job ``name`` (one run at a time)."""
    raise NotImplementedError
