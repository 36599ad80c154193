"""crawjud-tasks: a typed, reliable Celery task layer for CrawJUD-style legal-automation bots.

``create_app(config)`` returns a configured Celery app with every CrawJUD task registered;
``install(app, config)`` adds the tasks to a Celery app the host already has.
"""

from __future__ import annotations

from typing import Any

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
)
from crawjud_tasks._signatures import ImmutableSig, PartialSig, Sig
from crawjud_tasks._state import app_settings
from crawjud_tasks._workflows import chord, group, map_chunks, pipeline
from crawjud_tasks.errors import (
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
    ResultTimeoutError,
    SecretNotFoundError,
    SettingsError,
    TaskFailedError,
    TransientError,
    UnknownBotError,
    VisibilityTimeoutError,
)

__all__ = [
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
    "ResultTimeoutError",
    "RetryPolicy",
    "Secret",
    "SecretNotFoundError",
    "Settings",
    "SettingsError",
    "Sig",
    "TaskFailedError",
    "TaskRef",
    "TransientError",
    "TypedResult",
    "UnknownBotError",
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


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from crawjud_tasks._metadata import version  # noqa: PLC0415

        return version()
    msg = f"module 'crawjud_tasks' has no attribute {name!r}"
    raise AttributeError(msg)
