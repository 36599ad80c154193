"""Bots: the run lifecycle of CrawJUD robots (registry, inputs, checkpoints, events, reports).

Tasks here are named ``<namespace>.bots.*`` and routed to the ``<namespace>.bots`` queue. A host
service dispatches runs with :mod:`crawjud_tasks.bots.contracts`; the worker's process registers
the bots (this module) and runs them.

Writing a bot::

    from crawjud_tasks.bots import BaseBot, Item, ItemOutcome, RunContext, bot
    from crawjud_tasks import ItemError

    @bot("projudi.capa")
    class Capa(BaseBot[None]):
        required_columns = ("NUMERO_PROCESSO",)

        def process(self, item: Item, ctx: RunContext[None]) -> ItemOutcome:
            ...
            return ItemOutcome.success({"STATUS": "ok"})
"""

from crawjud_tasks.bots._aio import acancel_run, arun_events, arun_state
from crawjud_tasks.bots._bot import BaseBot, Bot, Item, ItemOutcome, NoOptions
from crawjud_tasks.bots._context import LogLevel, RunContext, RunLog
from crawjud_tasks.bots._events import RunEvent, format_event, run_events
from crawjud_tasks.bots._extensions import add_secret_provider, set_report_store
from crawjud_tasks.bots._registry import bot, known_bots, register_bot
from crawjud_tasks.bots._reports import LocalReportStore, ReportStore
from crawjud_tasks.bots._runs import RunState, cancel_run, check_run_id, run_state
from crawjud_tasks.bots._secrets import EnvSecretProvider, FileSecretProvider, SecretProvider

__all__ = [
    "BaseBot",
    "Bot",
    "EnvSecretProvider",
    "FileSecretProvider",
    "Item",
    "ItemOutcome",
    "LocalReportStore",
    "LogLevel",
    "NoOptions",
    "ReportStore",
    "RunContext",
    "RunEvent",
    "RunLog",
    "RunState",
    "SecretProvider",
    "acancel_run",
    "add_secret_provider",
    "arun_events",
    "arun_state",
    "bot",
    "cancel_run",
    "check_run_id",
    "format_event",
    "known_bots",
    "register_bot",
    "run_events",
    "run_state",
    "set_report_store",
]
