"""Contracts, types and an app that the typing checks share.

The files of this folder are type-checked by tests/test_typing.py, never run.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
from typing import TypedDict

from crawjud_tasks import create_app, task_contract

app = create_app()


class Status(enum.Enum):
    VALID = "valid"
    INVALID = "invalid"


@dataclasses.dataclass(frozen=True)
class Lawsuit:
    number: str
    year: int


@dataclasses.dataclass(frozen=True)
class Checked:
    number: str
    status: Status


class Summary(TypedDict):
    total: int
    valid: int


@task_contract("typing.add")
def add(a: int, b: int = 0) -> int:
    raise NotImplementedError


@task_contract("typing.check")
def check(lawsuit: Lawsuit, *, strict: bool = False) -> Checked:
    raise NotImplementedError


@task_contract("typing.prepare")
def prepare(numbers: list[str], year: int) -> list[Lawsuit]:
    raise NotImplementedError


@task_contract("typing.check_all")
def check_all(lawsuits: list[Lawsuit]) -> list[Checked]:
    raise NotImplementedError


@task_contract("typing.summarize")
def summarize(results: list[Checked]) -> Summary:
    raise NotImplementedError


@task_contract("typing.status")
def status(number: str) -> Status:
    raise NotImplementedError


@task_contract("typing.checked_at")
def checked_at(number: str) -> dt.datetime:
    raise NotImplementedError


@task_contract("typing.when")
def when(days: int | None) -> dt.datetime | None:
    raise NotImplementedError


@task_contract("typing.either")
def either(number: str) -> int | str:
    raise NotImplementedError


@task_contract("typing.total")
def total(values: list[int]) -> int:
    raise NotImplementedError


@task_contract("typing.record")
def record(marker: str) -> None:
    raise NotImplementedError


@task_contract("typing.publish")
def publish(summary: Summary, *, channel: str = "mail") -> None:
    raise NotImplementedError


@task_contract("typing.label")
def label(*, text: str) -> str:
    raise NotImplementedError
