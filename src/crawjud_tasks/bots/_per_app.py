"""What the bots domain keeps per app: the bots, secret providers and report store a host
registered on it (``app_state(app).domain(BotsState)``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from crawjud_tasks._state import AppState
    from crawjud_tasks.bots._bot import Bot
    from crawjud_tasks.bots._reports import ReportStore
    from crawjud_tasks.bots._secrets import SecretProvider

__all__ = ["BotsState"]


class BotsState:
    """The bots domain's registries of one app; changed under the app state's lock."""

    __slots__ = ("bots", "report_store", "secret_providers", "state")

    def __init__(self, state: AppState) -> None:
        self.state = state
        #: Bots registered on this app only (``register_bot``), by key.
        self.bots: dict[str, Callable[[], Bot[Any]]] = {}
        #: Host secret providers, asked first, in the order added.
        self.secret_providers: list[SecretProvider] = []
        #: The host's report store, if it set one.
        self.report_store: ReportStore | None = None
