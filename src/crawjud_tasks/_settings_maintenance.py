"""The maintenance section of the settings (``maintenance.*``, ``CRAWJUD_TASKS_MAINTENANCE__*``).

Kept apart from :mod:`crawjud_tasks._settings` only for its size; ``Settings.maintenance`` is one.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from crawjud_tasks._settings_values import ROOTS

__all__ = ["MaintenanceSettings"]


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class MaintenanceSettings:
    """Settings of the maintenance domain."""

    #: Folders that maintenance tasks may act in; nothing outside them is touched. Absolute,
    #: resolved (links followed) when the settings are loaded. The library's own folders
    #: (``logs_dir``, ``backup_dir``, the reports and the outbox folders) are roots too.
    roots: tuple[Path, ...] = dataclasses.field(default=(), metadata=ROOTS)
    #: Where the library's own log files are written (default: ``<data_dir>/logs``).
    logs_dir: Path | None = None
    #: Seconds a log file is kept after its last change.
    log_retention: float = 30 * 86400.0
    #: Seconds an outbox ``.eml`` file is kept after its last change.
    outbox_retention: float = 30 * 86400.0
    #: Cleanup keeps every file changed within this many seconds, whatever its age rule says.
    grace_period: float = 3600.0
    #: Where backups are written (default: ``<data_dir>/backups``).
    backup_dir: Path | None = None
    #: Folders (inside the roots) copied into every backup.
    backup_folders: tuple[Path, ...] = dataclasses.field(default=(), metadata=ROOTS)
    #: Backups kept: the newest of each of the last N days, weeks and months that have one.
    backup_keep_daily: int = 7
    backup_keep_weekly: int = 4
    backup_keep_monthly: int = 12
    #: The health check reports a backup older than this many seconds as degraded.
    backup_max_age: float = 2 * 86400.0
    #: Seconds one Redis hygiene pass may scan before it stops (the next pass goes on).
    hygiene_budget: float = 30.0
    #: Keys per SCAN page, pipelined inspection and UNLINK batch.
    hygiene_batch: int = 500
    #: Seconds the whole health report may take (each check has its own share; at most 10).
    health_timeout: float = 10.0
    #: The health check reports less free disk space than this fraction as degraded.
    disk_min_free: float = 0.10
    #: Who gets the ``alert`` mail when the health status worsens (none: no mail).
    alert_to: tuple[str, ...] = ()
    #: Seconds before the same status is alerted again.
    alert_cooldown: float = 3600.0

    def __post_init__(self) -> None:
        # A relative root is left as given: the value rules refuse it with its own message.
        resolved = tuple(
            root.expanduser().resolve() if root.expanduser().is_absolute() else root
            for root in self.roots
        )
        object.__setattr__(self, "roots", resolved)
