"""Results used as another type: each marked line must fail (markers as in neg_dispatch.py)."""

# Each marker must stay on the line it is about: the formatter leaves these files alone.
# fmt: off

from __future__ import annotations

import datetime as dt

import typing_contracts as c

from crawjud_tasks import group

lawsuit = c.Lawsuit(number="0001", year=2024)

total: str = c.add.delay(1).get()  # E: mypy[assignment `"int"`] pyright[reportAssignmentType `"int" is not assignable to declared type "str"`]
checked: c.Lawsuit = c.check.delay(lawsuit).get()  # E: mypy[assignment] pyright[reportAssignmentType]
# pyright strict also reports the unknown type that the misspelled attribute leaves behind.
number: str = c.check.delay(lawsuit).get().numbr  # E: mypy[attr-defined `maybe "number"?`] pyright[reportAttributeAccessIssue `"numbr"`] pyright[reportUnknownMemberType] pyright[reportUnknownVariableType]
status: str = c.status.delay("1").get()  # E: mypy[assignment `"Status"`] pyright[reportAssignmentType]
valid: str = c.summarize.delay([]).get()["valid"]  # E: mypy[assignment] pyright[reportAssignmentType]
c.summarize.delay([]).get()["invalid"]  # E: mypy[misc `"invalid" is not a valid TypedDict key`] pyright[reportGeneralTypeIssues `"invalid" is not a defined key`]
first: c.Checked = c.prepare.delay(["1"], 2024).get()[0]  # E: mypy[assignment] pyright[reportAssignmentType]
when: dt.datetime = c.when.delay(1).get()  # E: mypy[assignment `"datetime | None"`] pyright[reportAssignmentType]
either: int = c.either.delay("1").get()  # E: mypy[assignment] pyright[reportAssignmentType]
values: list[str] = group([c.add.s(1), c.add.s(2)]).delay().get()  # E: mypy[assignment] pyright[reportAssignmentType]
c.add.delay(1).get(timeout="5")  # E: mypy[arg-type] pyright[reportArgumentType]
c.add.delay(1).get(propagate=False)  # E: mypy[call-arg] pyright[reportCallIssue]
