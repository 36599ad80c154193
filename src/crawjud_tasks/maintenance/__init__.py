"""Maintenance: file cleanup, backups and restore, Redis hygiene, a health check and data
synchronisation jobs, each confined to the configured roots and run under a lease.

Each operation is a function of the app that runs in the caller's process (the CLI uses them)
and a contract of :mod:`crawjud_tasks.maintenance.contracts` that a host or a schedule
dispatches to the ``<namespace>.maintenance`` queue. See the "Maintenance" docs page.
"""

from __future__ import annotations

from crawjud_tasks.maintenance._api import (
    backup,
    clean_defaults,
    clean_files,
    redis_hygiene,
    register_sync_job,
    restore,
    run_sync,
    sync_jobs,
)
from crawjud_tasks.maintenance._health import health_check
from crawjud_tasks.maintenance._sync import SyncJob
from crawjud_tasks.maintenance.contracts import (
    BackupReport,
    CheckResult,
    CleanReport,
    HealthReport,
    HealthStatus,
    HygieneReport,
    RestoreReport,
    SkippedPath,
    SyncReport,
)

__all__ = [
    "BackupReport",
    "CheckResult",
    "CleanReport",
    "HealthReport",
    "HealthStatus",
    "HygieneReport",
    "RestoreReport",
    "SkippedPath",
    "SyncJob",
    "SyncReport",
    "backup",
    "clean_defaults",
    "clean_files",
    "health_check",
    "redis_hygiene",
    "register_sync_job",
    "restore",
    "run_sync",
    "sync_jobs",
]
