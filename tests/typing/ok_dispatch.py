"""Dispatching contracts: the argument checks pass and the results have the declared types."""

from __future__ import annotations

import datetime as dt

import typing_contracts as c
from typing_extensions import assert_type

from crawjud_tasks import ImmutableSig, PartialSig, Sig, TypedResult

lawsuit = c.Lawsuit(number="0001", year=2024)

# delay(...) gives a TypedResult of the declared return type, and get() that type.
assert_type(c.add.delay(1), TypedResult[int])
assert_type(c.add.delay(1, 2).get(), int)
assert_type(c.add.delay(a=1, b=2).get(timeout=5), int)
assert_type(c.check.delay(lawsuit).get(), c.Checked)  # dataclass
assert_type(c.check.delay(lawsuit, strict=True).get().status, c.Status)
assert_type(c.summarize.delay([]).get(), c.Summary)  # TypedDict
assert_type(c.summarize.delay([]).get()["total"], int)
assert_type(c.prepare.delay(["1", "2"], 2024).get(), list[c.Lawsuit])  # list
assert_type(c.status.delay("1").get(), c.Status)  # enum
assert_type(c.checked_at.delay("1").get(), dt.datetime)  # datetime
assert_type(c.when.delay(None).get(), dt.datetime | None)  # optional
assert_type(c.either.delay("1").get(), int | str)  # union
assert_type(c.record.delay("marker"), TypedResult[None])
c.publish.delay({"total": 2, "valid": 1}, channel="log")  # a TypedDict argument

# The rest of a result handle.
result = c.add.delay(1)
assert_type(result.id, str)
assert_type(result.state, str)
assert_type(result.ready(), bool)
assert_type(result.successful(), bool)
assert_type(result.failed(), bool)
assert_type(result.forget(), None)
assert_type(result.revoke(terminate=True), None)
assert_type(c.add.result(result.id), TypedResult[int])
assert_type(c.add.result(result.id, app=c.app), TypedResult[int])

# .s(...): complete when every required argument is given, partial when the first is missing.
assert_type(c.add.s(1), Sig[int])
assert_type(c.add.s(1, b=2), Sig[int])
assert_type(c.add.s(), PartialSig[int, int])
assert_type(c.add.s(b=2), PartialSig[int, int])
assert_type(c.check.s(lawsuit), Sig[c.Checked])
assert_type(c.check.s(), PartialSig[c.Lawsuit, c.Checked])
assert_type(c.check.s(strict=True), PartialSig[c.Lawsuit, c.Checked])
assert_type(c.prepare.s(year=2024), PartialSig[list[str], list[c.Lawsuit]])
assert_type(c.label.s(text="x"), Sig[str])  # a keyword-only parameter is never the missing one

# .si(...): complete, and ignores the previous result in a chain.
assert_type(c.add.si(1, 2), ImmutableSig[int])
assert_type(c.check.si(lawsuit, strict=False), ImmutableSig[c.Checked])

# Options go to apply_async, never beside the task's own arguments.
sent = c.add.s(1, 2).apply_async(countdown=3, queue="crawjud.bots", priority=5)
assert_type(sent, TypedResult[int])
later = dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc)
assert_type(c.add.s(1).apply_async(eta=later, expires=60.0, task_id="id-1"), TypedResult[int])
assert_type(c.add.s(1).apply_async(time_limit=30, soft_time_limit=20.5), TypedResult[int])
assert_type(c.add.s(1).delay(), TypedResult[int])
assert_type(c.add.si(1).apply_async(countdown=1), TypedResult[int])

# A partial signature is sent with its missing first argument.
assert_type(c.add.s(b=2).delay(1), TypedResult[int])
assert_type(c.check.s(strict=True).apply_async(lawsuit, countdown=1), TypedResult[c.Checked])

# using(app) keeps the contract's parameters (names, defaults) and result.
on_app = c.add.using(c.app)
assert_type(on_app.delay(1, b=2), TypedResult[int])
assert_type(on_app.s(b=2), PartialSig[int, int])
assert_type(on_app.si(1), ImmutableSig[int])
assert_type(c.check.using(c.app).s(strict=True), PartialSig[c.Lawsuit, c.Checked])
assert_type(c.add.full_name(c.app), str)

# Calling the contract runs the implementation bound in this process.
assert_type(c.add(1, b=2), int)
