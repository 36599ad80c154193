"""A worker app that runs the test bots (``--app tests.examples.bot_worker:app``).

Settings come from ``CRAWJUD_TASKS_*``.
"""

from __future__ import annotations

from crawjud_tasks import create_app
from tests.examples import bots

app = create_app()
#: The bots this worker runs (registered by importing the module).
BOTS = (bots.Echo, bots.BrokenSetup)
