"""The value rules of settings: names, zones, URLs, ranges and the Celery passthrough.

:class:`~crawjud_tasks.Settings` runs :func:`check_values` once, when it is built; each rule
raises a one-line :class:`~crawjud_tasks.errors.SettingsError` naming the setting.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import zoneinfo
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crawjud_tasks._checks import BACKEND_SCHEMES, BROKER_SCHEMES, url_scheme
from crawjud_tasks._redact import redact_url
from crawjud_tasks.errors import SettingsError

if TYPE_CHECKING:
    from crawjud_tasks._settings import Settings

__all__ = ["ROOTS", "check_values", "suggest"]

#: Above this many candidates, an unknown-name error points to the reference instead of listing.
_MAX_LISTED = 30
_CELERY_DOCS = "https://docs.celeryq.dev/en/stable/userguide/configuration.html"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")

#: Celery settings that crawjud-tasks fixes itself, with where to set them instead.
_PINNED_CELERY: Mapping[str, str] = {
    "broker_url": "use the setting 'broker_url'",
    "result_backend": "use the setting 'result_backend'",
    "broker_connection_timeout": "use the setting 'broker_connection_timeout'",
    "accept_content": "crawjud-tasks accepts JSON only",
    "result_accept_content": "crawjud-tasks accepts JSON only",
    "task_serializer": "crawjud-tasks sends JSON only",
    "result_serializer": "crawjud-tasks stores JSON only",
    "event_serializer": "crawjud-tasks sends JSON only",
    "enable_utc": "crawjud-tasks works in UTC inside",
    "timezone": "use the setting 'timezone'",
    "result_expires": "use the setting 'result_expires'",
    "task_default_queue": "use the setting 'queues.default'",
    "task_queues": "use the 'queues' settings",
    "worker_send_task_events": "use the setting 'task_events'",
    "task_send_sent_event": "use the setting 'task_events'",
    "control_exchange": "it is derived from the setting 'namespace'",
    "event_exchange": "it is derived from the setting 'namespace'",
}
#: Transport options that crawjud-tasks sets from its own settings.
_PINNED_TRANSPORT = {
    "visibility_timeout": "visibility_timeout",
    "unacked_key": "namespace",
    "unacked_index_key": "namespace",
    "unacked_mutex_key": "namespace",
}


def suggest(
    name: str, candidates: list[str], *, render: Callable[[str], str] = repr, reference: str = ""
) -> str:
    """The hint for an unknown ``name``: the closest candidate, or where the valid names are."""
    close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    if close:
        return f"did you mean {render(close[0])}?"
    if len(candidates) > _MAX_LISTED and reference:
        return f"no valid name is close to it; see {reference}"
    return f"valid names are: {', '.join(sorted(candidates))}"


#: The most input columns a run may have: a report sheet adds up to 4 columns to them, and a
#: spreadsheet holds 16,384.
MAX_REPORT_COLUMNS = 16_380
#: The rows a spreadsheet's sheet holds.
MAX_SHEET_ROWS = 1_048_576


def _positive(name: str, value: float) -> None:
    if not value > 0:
        msg = f"setting {name!r} must be greater than 0, got {value!r}"
        raise SettingsError(msg)


def _check_url(name: str, url: str | None, schemes: frozenset[str]) -> None:
    if url is None:
        return
    if url_scheme(url) not in schemes:
        shown = redact_url(url)
        msg = (
            f"setting {name!r} must be a URL with one of the schemes "
            f"{', '.join(sorted(schemes))}, got {shown!r}"
        )
        raise SettingsError(msg)


#: Field metadata of a setting that lists folders the library confines itself to.
ROOTS = {"roots": True}


def _check_fields(section: Any, path: str) -> None:
    """The rules every field of every section follows: numbers are finite (``inf`` would fail
    later, in Redis or Celery), paths hold no NUL byte, and root folders are absolute."""
    for field in dataclasses.fields(section):
        value: Any = getattr(section, field.name)
        name = f"{path}{field.name}"
        if dataclasses.is_dataclass(value):
            _check_fields(value, f"{name}.")
        elif isinstance(value, float) and not math.isfinite(value):
            msg = f"setting {name!r} must be a finite number (seconds or a count), got {value!r}"
            raise SettingsError(msg)
        items: tuple[Any, ...] = value if isinstance(value, tuple) else (value,)  # pyright: ignore[reportUnknownVariableType]  (a field's value is Any; the loop checks each item's type)
        for item in items:
            if not isinstance(item, Path):
                continue
            if "\x00" in str(item):
                msg = f"setting {name!r} has a NUL byte in {str(item)!r}; remove it"
                raise SettingsError(msg)
            if field.metadata.get("roots") and not item.expanduser().is_absolute():
                msg = (
                    f"setting {name!r} holds {str(item)!r}, which would be the worker's current "
                    "folder or one below it; roots must be absolute folders such as "
                    "'/srv/crawjud/input' or '~/crawjud/input'"
                )
                raise SettingsError(msg)


def check_values(settings: Settings) -> None:
    """Check every value rule of ``settings``; raise SettingsError at the first one broken."""
    _check_fields(settings, "")
    if not _NAME.match(settings.namespace):
        msg = (
            f"setting 'namespace' must be letters, digits, '_', '.' or '-' "
            f"(starting with a letter or digit), got {settings.namespace!r}"
        )
        raise SettingsError(msg)
    for domain, queue in dataclasses.asdict(settings.queues).items():
        if queue is not None and not _NAME.match(queue):
            msg = (
                f"setting 'queues.{domain}' must be a queue name like 'crawjud.bots', got {queue!r}"
            )
            raise SettingsError(msg)
    try:
        zoneinfo.ZoneInfo(settings.timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        msg = (
            "setting 'timezone' must be an IANA zone such as 'America/Sao_Paulo', "
            f"got {settings.timezone!r}"
        )
        raise SettingsError(msg) from exc
    _check_url("broker_url", settings.broker_url, BROKER_SCHEMES)
    _check_url("result_backend", settings.result_backend, BACKEND_SCHEMES)
    _positive("broker_connection_timeout", settings.broker_connection_timeout)
    _positive("visibility_timeout", settings.visibility_timeout)
    _positive("result_expires", settings.result_expires)
    _positive("idempotency_ttl", settings.idempotency_ttl)
    _positive("mail.timeout", settings.mail.timeout)
    monitoring = settings.monitoring
    for name in (
        "metrics_flush_interval",
        "rollup_retention",
        "worker_timeout",
        "health_interval",
        "health_timeout",
        "stall_timeout",
        "top_exceptions",
        "max_pending_series",
    ):
        _positive(f"monitoring.{name}", getattr(monitoring, name))
    _positive("bots.max_inline_rows", settings.bots.max_inline_rows)
    _check_schedules(settings)
    _positive("bots.retention", settings.bots.retention)
    _positive("bots.events_max", settings.bots.events_max)
    for name in (
        "max_input_bytes",
        "max_input_rows",
        "max_xlsx_unpacked_bytes",
        "max_cell_chars",
        "max_columns",
        "checkpoint_batch",
        "checkpoint_window",
        "report_xlsx_max_items",
    ):
        _positive(f"bots.{name}", getattr(settings.bots, name))
    if settings.bots.report_xlsx_max_items > MAX_SHEET_ROWS - 1:
        msg = (
            f"setting 'bots.report_xlsx_max_items' must be at most {MAX_SHEET_ROWS - 1} (a sheet "
            f"holds {MAX_SHEET_ROWS} rows), got {settings.bots.report_xlsx_max_items!r}"
        )
        raise SettingsError(msg)
    if settings.bots.max_columns > MAX_REPORT_COLUMNS:
        msg = (
            f"setting 'bots.max_columns' must be at most {MAX_REPORT_COLUMNS} (a spreadsheet "
            f"holds 16,384 columns and a report adds a few), got {settings.bots.max_columns!r}"
        )
        raise SettingsError(msg)
    _positive("max_message_bytes", settings.max_message_bytes)
    _check_maintenance(settings)
    if not 0 < settings.mail.port < 65536:
        msg = f"setting 'mail.port' must be a TCP port (1-65535), got {settings.mail.port!r}"
        raise SettingsError(msg)
    ca_file = settings.tls.ca_file
    if ca_file is not None and not ca_file.expanduser().is_file():
        msg = (
            f"setting 'tls.ca_file' is {str(ca_file)!r}, which is no file; give the PEM file of "
            "the certificate authorities that signed your Redis server's certificate"
        )
        raise SettingsError(msg)
    _check_celery(settings.celery)


def _check_maintenance(settings: Settings) -> None:
    section = settings.maintenance
    for name in (
        "log_retention",
        "outbox_retention",
        "backup_max_age",
        "hygiene_budget",
        "hygiene_batch",
        "health_timeout",
        "alert_cooldown",
        "backup_keep_daily",
    ):
        _positive(f"maintenance.{name}", getattr(section, name))
    for name in ("grace_period", "backup_keep_weekly", "backup_keep_monthly"):
        if getattr(section, name) < 0:
            msg = f"setting 'maintenance.{name}' must be 0 or more, got {getattr(section, name)!r}"
            raise SettingsError(msg)
    if section.health_timeout > 10:
        msg = (
            "setting 'maintenance.health_timeout' must be at most 10 s (a health report never "
            f"waits longer), got {section.health_timeout!r}"
        )
        raise SettingsError(msg)
    if not 0 <= section.disk_min_free < 1:
        msg = (
            "setting 'maintenance.disk_min_free' must be a fraction from 0 to 1 (0.1 = 10%), "
            f"got {section.disk_min_free!r}"
        )
        raise SettingsError(msg)


def _check_celery(options: Mapping[str, Any]) -> None:
    if not options:
        return  # nothing to check: settings alone (the health probe) import no Celery
    from celery.app.defaults import DEFAULTS  # noqa: PLC0415  (celery is heavy; only when used)

    known = [key for key in DEFAULTS if key not in _PINNED_CELERY]
    for key, value in options.items():
        if key in _PINNED_CELERY:
            msg = f"setting 'celery.{key}' is fixed by crawjud-tasks; {_PINNED_CELERY[key]}"
            raise SettingsError(msg)
        if key not in DEFAULTS and not key.startswith("redbeat_"):
            hint = suggest(key, known, render=lambda n: repr(f"celery.{n}"), reference=_CELERY_DOCS)
            msg = f"unknown Celery setting 'celery.{key}'; {hint}"
            raise SettingsError(msg)
        if key == "broker_transport_options" and isinstance(value, Mapping):
            for option, owner in _PINNED_TRANSPORT.items():
                if option in value:
                    msg = (
                        f"setting 'celery.broker_transport_options.{option}' is set by "
                        f"crawjud-tasks; use the setting {owner!r}"
                    )
                    raise SettingsError(msg)


def _check_schedules(settings: Settings) -> None:
    section = settings.schedules
    _positive("schedules.loop_interval", section.loop_interval)
    _positive("schedules.run_lease_ttl", section.run_lease_ttl)
    if section.lock_timeout < 2 * section.loop_interval:
        msg = (
            "setting 'schedules.lock_timeout' must be at least twice 'schedules.loop_interval' "
            f"(the leader renews the lock every tick), got {section.lock_timeout!r} and "
            f"{section.loop_interval!r}"
        )
        raise SettingsError(msg)
