"""The maintenance domain's registrar: binds each contract to its implementation on an app."""

from __future__ import annotations

from typing import TYPE_CHECKING

from crawjud_tasks.maintenance import _api, _health
from crawjud_tasks.maintenance import contracts as c

if TYPE_CHECKING:
    from celery import Celery

    from crawjud_tasks._state import AppState

__all__ = ["register"]


def register(app: Celery, state: AppState) -> None:
    """Implement every maintenance contract on ``app`` (each runs under its lease)."""
    del state  # the operations reach it through the app

    @c.clean_files.implement(app)
    def _clean_files(
        root: str,
        pattern: str,
        older_than: float,
        *,
        keep_last: int = 0,
        max_files: int | None = None,
        dry_run: bool = False,
    ) -> c.CleanReport:
        return _api.clean_files(
            app,
            root,
            pattern,
            older_than,
            keep_last=keep_last,
            max_files=max_files,
            dry_run=dry_run,
        )

    @c.clean_defaults.implement(app)
    def _clean_defaults(dry_run: bool = False) -> list[c.CleanReport]:
        return _api.clean_defaults(app, dry_run=dry_run)

    @c.backup.implement(app)
    def _backup(to: str | None = None) -> c.BackupReport:
        return _api.backup(app, to=to)

    @c.restore.implement(app)
    def _restore(
        archive: str, target: str | None = None, redis: bool = True, replace: bool = False
    ) -> c.RestoreReport:
        return _api.restore(app, archive, target=target, redis=redis, replace=replace)

    @c.redis_hygiene.implement(app)
    def _redis_hygiene(dry_run: bool = False) -> c.HygieneReport:
        return _api.redis_hygiene(app, dry_run=dry_run)

    @c.health_check.implement(app)
    def _health_check() -> c.HealthReport:
        return _health.health_check(app)

    @c.sync.implement(app)
    def _sync(name: str) -> c.SyncReport:
        return _api.run_sync(app, name)
