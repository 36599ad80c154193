"""Contracts a host service imports: typed declarations only, no implementation."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
from typing import TypedDict

from crawjud_tasks import task_contract


class Status(enum.Enum):
    VALID = "valid"
    INVALID = "invalid"


@dataclasses.dataclass(frozen=True)
class Lawsuit:
    number: str
    year: int
    court: str | None = None


@dataclasses.dataclass(frozen=True)
class Checked:
    number: str
    status: Status
    checked_at: dt.datetime
    notes: list[str]


class Summary(TypedDict):
    total: int
    valid: int


@task_contract("examples.add")
def add(a: int, b: int = 0) -> int:
    raise NotImplementedError


@task_contract("examples.check")
def check(lawsuit: Lawsuit, *, strict: bool = False) -> Checked:
    raise NotImplementedError


@task_contract("examples.prepare")
def prepare(numbers: list[str], year: int) -> list[Lawsuit]:
    raise NotImplementedError


@task_contract("examples.check_all")
def check_all(lawsuits: list[Lawsuit]) -> list[Checked]:
    raise NotImplementedError


@task_contract("examples.summarize")
def summarize(results: list[Checked]) -> Summary:
    raise NotImplementedError


@task_contract("examples.total")
def total(values: list[int]) -> int:
    raise NotImplementedError


@task_contract("examples.fail")
def fail(reason: str) -> int:
    raise NotImplementedError


@task_contract("examples.record")
def record(marker: str) -> None:
    raise NotImplementedError


@task_contract("examples.when")
def when(days: int | None) -> dt.datetime | None:
    raise NotImplementedError


@task_contract("examples.unimplemented")
def unimplemented() -> int:
    raise NotImplementedError


@task_contract("examples.flaky")
def flaky(marker: str, failures: int) -> int:
    """Fails ``failures`` times with a TransientError, then returns the attempt number."""
    raise NotImplementedError


@task_contract("examples.refused")
def refused(marker: str) -> int:
    """Always fails with a PermanentError (never retried)."""
    raise NotImplementedError


@task_contract("examples.effect", delivery="at_least_once")
def effect(marker: str, seconds: float = 0.0) -> str:
    """Notes a side effect, then sleeps ``seconds``."""
    raise NotImplementedError


@task_contract("examples.crash", delivery="at_least_once", max_deliveries=3)
def crash(marker: str) -> str:
    """Notes the delivery, then kills the process running it."""
    raise NotImplementedError


@task_contract("examples.settle", delivery="at_least_once")
def settle(marker: str, seconds: float) -> str:
    """Notes its start, sleeps ``seconds`` and returns ``marker`` without touching Redis again
    (it may end while Redis is down)."""
    raise NotImplementedError


@task_contract("examples.pause")
def pause(marker: str, seconds: float) -> str:
    """The at-most-once ``settle``."""
    raise NotImplementedError
