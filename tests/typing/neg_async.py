"""Wrong uses of the awaitable API (markers as in neg_dispatch.py)."""

# Each marker must stay on the line it is about: the formatter leaves these files alone.
# fmt: off

from __future__ import annotations

import typing_contracts as c

from crawjud_tasks import aping
from crawjud_tasks.bots import arun_events, arun_state


async def host() -> None:
    await c.add.adelay("1")  # E: mypy[arg-type `expected "int"`] pyright[reportArgumentType `"a"`]
    await c.check.adelay(c.Lawsuit(number="1", year=2024), strikt=True)  # E: mypy[call-arg] pyright[reportCallIssue]
    result = await c.add.adelay(1)
    text: str = await result.aget()  # E: mypy[assignment] pyright[reportAssignmentType]
    print(text)
    await aping(c.app, timeout="5")  # E: mypy[arg-type] pyright[reportArgumentType]
    await arun_state(c.app, 7)  # E: mypy[arg-type] pyright[reportArgumentType]
    for _ in arun_events(c.app, "run-1"):  # E: mypy[attr-defined] pyright[reportGeneralTypeIssues] pyright[reportUnknownVariableType]
        pass
