"""What a host plugs into a worker's bot runs: secret providers and the report store."""

from __future__ import annotations

import threading
import weakref
from pathlib import Path
from typing import TYPE_CHECKING

from crawjud_tasks._state import app_settings
from crawjud_tasks.bots._reports import LocalReportStore, ReportStore
from crawjud_tasks.bots._secrets import EnvSecretProvider, FileSecretProvider, SecretProvider
from crawjud_tasks.errors import ContractError

if TYPE_CHECKING:
    from celery import Celery

__all__ = [
    "add_secret_provider",
    "report_store",
    "reports_folder",
    "secret_providers",
    "set_report_store",
]

_PROVIDERS: weakref.WeakKeyDictionary[Celery, list[SecretProvider]] = weakref.WeakKeyDictionary()
_STORES: weakref.WeakKeyDictionary[Celery, ReportStore] = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


def add_secret_provider(app: Celery, provider: SecretProvider) -> None:
    """Let ``provider`` (a vault client, say) resolve the secret references of runs on ``app``.

    Host providers are asked first, in the order added; then the environment provider
    (``CRAWJUD_SECRET_<NAME>``), then the file provider of ``bots.secrets_dir`` if set.

    Raises:
        ContractError: ``provider`` has no ``get(name)`` method.
    """
    if not callable(getattr(provider, "get", None)):
        msg = f"a secret provider has a get(name) -> str | None method; {provider!r} has none"
        raise ContractError(msg)
    with _LOCK:
        _PROVIDERS.setdefault(app, []).append(provider)


def secret_providers(app: Celery) -> list[SecretProvider]:
    """The providers that resolve secret references on ``app``, in the order asked."""
    providers: list[SecretProvider] = [*_PROVIDERS.get(app, ()), EnvSecretProvider()]
    folder = app_settings(app).bots.secrets_dir
    if folder is not None:
        providers.append(FileSecretProvider(Path(folder).expanduser()))
    return providers


def set_report_store(app: Celery, store: ReportStore) -> None:
    """Hand the reports of runs on ``app`` to ``store`` (default: the reports folder).

    Raises:
        ContractError: ``store`` has no ``store(run_id, archive)`` method.
    """
    if not callable(getattr(store, "store", None)):
        msg = f"a report store has a store(run_id, archive) -> str method; {store!r} has none"
        raise ContractError(msg)
    with _LOCK:
        _STORES[app] = store


def report_store(app: Celery) -> ReportStore:
    """Where the reports of runs on ``app`` go."""
    return _STORES.get(app) or LocalReportStore(reports_folder(app))


def reports_folder(app: Celery) -> Path:
    """The local reports folder of ``app``: ``bots.reports_dir`` or ``<data_dir>/reports``."""
    settings = app_settings(app)
    return Path(settings.bots.reports_dir or settings.resolved_data_dir / "reports").expanduser()
