"""What a host plugs into a worker's bot runs: secret providers and the report store."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from crawjud_tasks._state import app_state
from crawjud_tasks.bots._per_app import BotsState
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
    state = app_state(app)
    with state.lock:
        state.domain(BotsState).secret_providers.append(provider)


def secret_providers(app: Celery) -> list[SecretProvider]:
    """The providers that resolve secret references on ``app``, in the order asked."""
    state = app_state(app)
    providers = [*state.domain(BotsState).secret_providers, EnvSecretProvider()]
    folder = state.settings.bots.secrets_dir
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
    state = app_state(app)
    with state.lock:
        state.domain(BotsState).report_store = store


def report_store(app: Celery) -> ReportStore:
    """Where the reports of runs on ``app`` go."""
    return app_state(app).domain(BotsState).report_store or LocalReportStore(reports_folder(app))


def reports_folder(app: Celery) -> Path:
    """The local reports folder of ``app``: ``bots.reports_dir`` or ``<data_dir>/reports``."""
    settings = app_state(app).settings
    return Path(settings.bots.reports_dir or settings.resolved_data_dir / "reports").expanduser()
