"""Implementations that fit their contracts are accepted, and keep their own types."""

from __future__ import annotations

import datetime as dt
from typing import Any

import typing_contracts as c
from typing_extensions import assert_type

app = c.app


@c.add.implement(app)
def add(a: int, b: int = 0) -> int:
    return a + b


@c.check.implement(app, time_limit=60, soft_time_limit=50.5)
def check(lawsuit: c.Lawsuit, *, strict: bool = False) -> c.Checked:
    valid = lawsuit.number.isdigit() and not strict
    return c.Checked(number=lawsuit.number, status=c.Status.VALID if valid else c.Status.INVALID)


# An implementation may accept more than its contract: an extra keyword with a default, a
# keyword-only parameter taken as positional-or-keyword, a wider parameter type, a narrower
# return type.
@c.add.using(app).implement(app)
def add_verbose(a: int, b: int = 0, *, verbose: bool = False) -> int:
    return a + b


@c.check.implement(app)
def check_loosely(lawsuit: c.Lawsuit, strict: bool = False) -> c.Checked:
    return check(lawsuit, strict=strict)


@c.when.implement(app)
def when(days: int | str | None) -> dt.datetime:
    return dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)


@c.record.implement(app)
def record(marker: str) -> None:
    print(marker)


@c.label.implement(app)
def label(*, text: str) -> str:
    return text.upper()


# implement_bound: the Celery task comes first (its request has the id, retries, hostname...).
@c.add.implement_bound(app)
def add_bound(task: Any, a: int, b: int = 0) -> int:
    return a + b


@c.summarize.implement_bound(app, time_limit=10)
def summarize(task: object, results: list[c.Checked]) -> c.Summary:
    valid = sum(1 for result in results if result.status is c.Status.VALID)
    return {"total": len(results), "valid": valid}


# The decorated functions stay callable with the contract's parameters.
assert_type(add(1), int)
assert_type(add_verbose(1, b=2), int)
assert_type(check(c.Lawsuit(number="1", year=2024), strict=True), c.Checked)
assert_type(add_bound(None, 1), int)
assert_type(summarize(None, []), c.Summary)
