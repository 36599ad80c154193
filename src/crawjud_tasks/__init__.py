"""crawjud-tasks: a typed, reliable Celery task layer for CrawJUD-style legal-automation bots.

``create_app(config)`` returns a configured Celery app with every CrawJUD task registered;
``install(app, config)`` adds the tasks to a Celery app the host already has.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from crawjud_tasks._lazy import lazy_names
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
    ScheduleError,
    SecretNotFoundError,
    SettingsError,
    TaskFailedError,
    TransientError,
    UnknownBotError,
    UnknownScheduleError,
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
    from crawjud_tasks._ping import PingResult, aping, ping
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
    "ScheduleError",
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
    "UnknownScheduleError",
    "UnknownSyncJobError",
    "UnsafePathError",
    "VisibilityTimeoutError",
    "aping",
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
    "BotSettings": "_settings",
    "EmbeddedRedis": "_embedded",
    "EmbeddedStatus": "_embedded",
    "ImmutableSig": "_signatures",
    "Lease": "_lease",
    "MailSettings": "_settings",
    "MaintenanceSettings": "_settings",
    "MonitoringSettings": "_settings",
    "PartialSig": "_signatures",
    "PingResult": "_ping",
    "PoisonRecord": "_delivery",
    "QueueSettings": "_settings",
    "RetryPolicy": "_retry",
    "Secret": "_secret",
    "Settings": "_settings",
    "Sig": "_signatures",
    "TaskRef": "_contracts",
    "TlsSettings": "_settings",
    "TypedResult": "_results",
    "app_settings": "_state",
    "aping": "_ping",
    "chord": "_workflows",
    "create_app": "_app",
    "group": "_workflows",
    "install": "_app",
    "lease": "_lease",
    "map_chunks": "_workflows",
    "ping": "_ping",
    "pipeline": "_workflows",
    "poison_messages": "_delivery",
    "task_contract": "_contracts",
}


_load, __dir__ = lazy_names(__name__, _LAZY, globals())


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from crawjud_tasks._metadata import version  # noqa: PLC0415

        return version()
    return _load(name)
