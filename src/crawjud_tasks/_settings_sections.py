"""The sections of the settings: one frozen dataclass per domain or concern (``bots.*``,
``mail.*``, ...), each a field of :class:`~crawjud_tasks.Settings` named after it.

A section's environment variables are ``CRAWJUD_TASKS_<SECTION>__<FIELD>``. Every rule that
holds for all fields (finite numbers, no NUL in a path, absolute roots) is checked once, by
:mod:`crawjud_tasks._settings_values`; a field with ``metadata=ROOTS`` lists confinement roots.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Literal

from crawjud_tasks._secret import Secret
from crawjud_tasks._settings_values import ROOTS

__all__ = [
    "DOMAINS",
    "BotSettings",
    "MailSettings",
    "MaintenanceSettings",
    "MonitoringSettings",
    "QueueSettings",
    "SchedulesSettings",
    "TlsSettings",
]


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class QueueSettings:
    """Queue names; each defaults to ``<namespace>`` or ``<namespace>.<domain>``.

    A domain whose tasks run on a queue of their own has a field here; the tasks of the other
    domains (and ``<namespace>.ping``) go to the default queue.
    """

    default: str | None = None
    bots: str | None = None
    mail: str | None = None
    maintenance: str | None = None


#: The domains with a queue of their own (``<namespace>.<domain>``), from :class:`QueueSettings`.
DOMAINS: tuple[str, ...] = tuple(
    field.name for field in dataclasses.fields(QueueSettings) if field.name != "default"
)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class BotSettings:
    """Settings of the bot runtime."""

    #: Folders that bot input files may be read from (and reports written to); absolute.
    allowed_roots: tuple[Path, ...] = dataclasses.field(default=(), metadata=ROOTS)
    #: The most rows a run may carry inline in its message; larger inputs go in a file.
    max_inline_rows: int = 1000
    #: Where run reports are written (default: ``<data_dir>/reports``).
    reports_dir: Path | None = None
    #: Where each run gets a working folder of its own (default: ``<data_dir>/runs``).
    runs_dir: Path | None = None
    #: A folder of secret files for the file secret provider (one file per secret name).
    secrets_dir: Path | None = None
    #: Seconds a run's events, checkpoint and state are kept in Redis after its last change.
    retention: float = 7 * 86400.0
    #: The most events a run's stream keeps (the oldest are trimmed).
    events_max: int = 10_000
    #: The host's page that follows a run, ``{run_id}`` replaced (linked from notifications).
    logs_url: str | None = None
    #: The host's link to a run's report, ``{run_id}`` replaced (default: the report is
    #: attached to the notification, unless the report store gives a URL).
    report_url: str | None = None
    #: Input limits (a bigger input is refused before any item runs; see docs/bots.md): bytes
    #: on disk, rows, bytes an XLSX unpacks to, characters a cell, named columns (<= 16,380).
    max_input_bytes: int = 256 * 1024 * 1024
    max_input_rows: int = 2_000_000
    max_xlsx_unpacked_bytes: int = 512 * 1024 * 1024
    max_cell_chars: int = 32_767
    max_columns: int = 16_000
    #: ``checkpoint = "batch"`` bots: items a write holds and seconds a record waits, at most.
    checkpoint_batch: int = 256
    checkpoint_window: float = 0.005
    #: The most items a report workbook holds (XlsxWriter takes ~7 us a cell on one core; a
    #: bigger run's report has its CSV files alone; at most 1,048,575, a sheet's rows).
    report_xlsx_max_items: int = 50_000


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class MailSettings:
    """Settings of the mail domain. With no ``host``, mail goes to the file outbox."""

    host: str | None = None
    port: int = 587
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: str | None = None
    password: Secret | None = None
    sender: str = "CrawJUD <noreply@localhost>"
    timeout: float = 30.0
    #: Where the file outbox writes ``.eml`` files (default: ``<data_dir>/outbox``).
    outbox_dir: Path | None = None
    #: Host template folders; they take precedence over the package's templates.
    template_dirs: tuple[Path, ...] = ()
    #: Seconds a template may take to render before it is stopped as broken.
    render_timeout: float = 10.0
    #: The most characters a rendered part (HTML or text) may have.
    max_render_size: int = 4_000_000
    #: Seconds a mail task may run (a send of many messages included) before Celery stops it;
    #: its soft limit comes 10% earlier.
    task_time_limit: float = 900.0
    #: Folders attachments may be read from (default: ``bots.allowed_roots`` and the reports
    #: folder; see :attr:`Settings.attachment_roots`).
    attachment_roots: tuple[Path, ...] | None = dataclasses.field(default=None, metadata=ROOTS)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class MonitoringSettings:
    """Settings of monitoring."""

    #: Seconds between flushes of worker metrics to Redis (one pipelined write each).
    metrics_flush_interval: float = 5.0
    #: Collect metrics in workers and publishers (off: no signal handler is connected).
    metrics_enabled: bool = True
    #: Label task metrics with the worker's hostname (off: ``hostname="generic"``).
    hostname_labels: bool = False
    #: Exception classes counted by name per task; the rest count as ``other``.
    top_exceptions: int = 10
    #: Distinct metric series a process keeps while Redis is down; past it, deltas are dropped.
    max_pending_series: int = 10_000
    #: Seconds the per-minute rollups behind ``stats(window=...)`` are kept.
    rollup_retention: float = 86400.0
    #: Seconds after its last flush that a worker process counts as gone.
    worker_timeout: float = 60.0
    #: Where workers write their health records (default: ``<data_dir>/health``).
    health_dir: Path | None = None
    #: Seconds between a worker's health records (and beat heartbeats).
    health_interval: float = 2.0
    #: A health record older than this many seconds means the worker is not live.
    health_timeout: float = 30.0
    #: Seconds with messages waiting, free slots and nothing received before a worker counts
    #: as stalled (not live).
    stall_timeout: float = 120.0
    #: Recipients of the ``periodic_report`` mail (task stats of the last ``report_period``).
    report_to: tuple[str, ...] = ()
    #: Seconds the ``periodic_report`` covers, up to the present (1 second to 1 day).
    report_period: float = 86400.0
    #: The language of the ``periodic_report`` mail.
    report_locale: Literal["pt_BR", "en"] = "pt_BR"


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class TlsSettings:
    """Certificate checks of ``rediss://`` URLs (broker, result backend, Beat, the library's
    own client). ``ssl_cert_reqs``/``ssl_ca_certs`` in a URL, or a ``celery.broker_use_ssl``
    passthrough, take precedence."""

    #: A PEM file of the certificate authorities to trust (default: the system's store).
    ca_file: Path | None = None
    #: Check the server's certificate and name; ``False`` is logged as a WARNING once per app.
    verify: bool = True


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


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class SchedulesSettings:
    """Settings of the schedules domain (beat)."""

    #: Seconds a beat holds the leader lock without renewing it: a standby beat takes over
    #: within ``lock_timeout + loop_interval`` of the leader's death.
    lock_timeout: float = 20.0
    #: Seconds between two ticks of beat: the longest a due fire, a pause or a resume waits.
    loop_interval: float = 1.0
    #: Seconds a fire counts as running (for the overlap policy) when its worker never reports
    #: its end (the worker died).
    run_lease_ttl: float = 3600.0
    #: Recipients of the ``alert`` mail sent when a schedule is paused after failures (none: the
    #: pause is only logged).
    alert_to: tuple[str, ...] = ()
    #: Built-in schedules to switch on, by name (all are off by default; see "Schedules").
    builtins: tuple[str, ...] = ()
    #: The host's sync jobs the ``external_sync`` built-in runs (``maintenance.sync(name)``), as
    #: ``"name"`` (hourly, at :00) or ``"name=<cron>"`` (``"crm=*/15 * * * *"``).
    sync_jobs: tuple[str, ...] = ()
    #: At beat start, remove declared schedules that the code no longer declares.
    prune: bool = True
