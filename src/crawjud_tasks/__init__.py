"""crawjud-tasks: a typed, reliable Celery task layer for CrawJUD-style legal-automation bots.

``create_app(config)`` returns a configured Celery app with every CrawJUD task registered;
``install(app, config)`` adds the tasks to a Celery app the host already has.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from crawjud_tasks.errors import (
    ArchiveError,
    BackupError,
    BotParameterError,
    BrokerUnavailableError,
    ContractError,
    CrawjudTasksError,
    DispatchError,
    DuplicateRunError,
    EmbeddedRedisError,
    FatalBotError,
    InvalidEmailError,
    InvalidResultError,
    ItemError,
    LeaseError,
    LeaseHeldError,
    LeaseLostError,
    MailRejectedError,
    MailTemporaryError,
    PayloadError,
    PermanentError,
    PoisonMessageError,
    RedisFullError,
    ResultTimeoutError,
    SecretNotFoundError,
    SettingsError,
    TaskFailedError,
    TransientError,
    UnknownBotError,
    UnknownSyncJobError,
    UnsafePathError,
    VisibilityTimeoutError,
)

if TYPE_CHECKING:
    from crawjud_tasks._app import create_app, install
    from crawjud_tasks._contracts import TaskRef, task_contract
    from crawjud_tasks._delivery import PoisonRecord, poison_messages
    from crawjud_tasks._embedded import EmbeddedRedis, EmbeddedStatus
    from crawjud_tasks._lease import Lease, lease
    from crawjud_tasks._ping import PingResult, ping
    from crawjud_tasks._results import TypedResult
    from crawjud_tasks._retry import RetryPolicy
    from crawjud_tasks._secret import Secret
    from crawjud_tasks._settings import (
        BotSettings,
        MailSettings,
        MaintenanceSettings,
        MonitoringSettings,
        QueueSettings,
        Settings,
        TlsSettings,
    )
    from crawjud_tasks._signatures import ImmutableSig, PartialSig, Sig
    from crawjud_tasks._state import app_settings
    from crawjud_tasks._workflows import chord, group, map_chunks, pipeline

__all__ = [
    "ArchiveError",
    "BackupError",
    "BotParameterError",
    "BotSettings",
    "BrokerUnavailableError",
    "ContractError",
    "CrawjudTasksError",
    "DispatchError",
    "DuplicateRunError",
    "EmbeddedRedis",
    "EmbeddedRedisError",
    "EmbeddedStatus",
    "FatalBotError",
    "ImmutableSig",
    "InvalidEmailError",
    "InvalidResultError",
    "ItemError",
    "Lease",
    "LeaseError",
    "LeaseHeldError",
    "LeaseLostError",
    "MailRejectedError",
    "MailSettings",
    "MailTemporaryError",
    "MaintenanceSettings",
    "MonitoringSettings",
    "PartialSig",
    "PayloadError",
    "PermanentError",
    "PingResult",
    "PoisonMessageError",
    "PoisonRecord",
    "QueueSettings",
    "RedisFullError",
    "ResultTimeoutError",
    "RetryPolicy",
    "Secret",
    "SecretNotFoundError",
    "Settings",
    "SettingsError",
    "Sig",
    "TaskFailedError",
    "TaskRef",
    "TlsSettings",
    "TransientError",
    "TypedResult",
    "UnknownBotError",
    "UnknownSyncJobError",
    "UnsafePathError",
    "VisibilityTimeoutError",
    "app_settings",
    "chord",
    "create_app",
    "group",
    "install",
    "lease",
    "map_chunks",
    "ping",
    "pipeline",
    "poison_messages",
    "task_contract",
]


#: Where each name that loads on first use lives: importing ``crawjud_tasks`` (and so
#: ``crawjud_tasks.errors`` or a domain's contracts) does not import Celery.
_LAZY = {
    "BotSettings": "crawjud_tasks._settings",
    "EmbeddedRedis": "crawjud_tasks._embedded",
    "EmbeddedStatus": "crawjud_tasks._embedded",
    "ImmutableSig": "crawjud_tasks._signatures",
    "Lease": "crawjud_tasks._lease",
    "MailSettings": "crawjud_tasks._settings",
    "MaintenanceSettings": "crawjud_tasks._settings",
    "MonitoringSettings": "crawjud_tasks._settings",
    "PartialSig": "crawjud_tasks._signatures",
    "PingResult": "crawjud_tasks._ping",
    "PoisonRecord": "crawjud_tasks._delivery",
    "QueueSettings": "crawjud_tasks._settings",
    "RetryPolicy": "crawjud_tasks._retry",
    "Secret": "crawjud_tasks._secret",
    "Settings": "crawjud_tasks._settings",
    "Sig": "crawjud_tasks._signatures",
    "TaskRef": "crawjud_tasks._contracts",
    "TlsSettings": "crawjud_tasks._settings",
    "TypedResult": "crawjud_tasks._results",
    "app_settings": "crawjud_tasks._state",
    "chord": "crawjud_tasks._workflows",
    "create_app": "crawjud_tasks._app",
    "group": "crawjud_tasks._workflows",
    "install": "crawjud_tasks._app",
    "lease": "crawjud_tasks._lease",
    "map_chunks": "crawjud_tasks._workflows",
    "ping": "crawjud_tasks._ping",
    "pipeline": "crawjud_tasks._workflows",
    "poison_messages": "crawjud_tasks._delivery",
    "task_contract": "crawjud_tasks._contracts",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is not None:
        value = getattr(importlib.import_module(module), name)
        globals()[name] = value
        return value
    if name == "__version__":
        from crawjud_tasks._metadata import version  # noqa: PLC0415

        return version()
    msg = f"module 'crawjud_tasks' has no attribute {name!r}"
    raise AttributeError(msg)


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
