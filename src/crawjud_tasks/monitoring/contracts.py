"""The monitoring contracts: what a host or a schedule dispatches.

Cheap to import. ``periodic_report`` goes to the default queue (it reads Redis and dispatches one
mail; the mail itself goes through ``mail.send_email`` on the mail queue).

Example::

    from crawjud_tasks.monitoring.contracts import periodic_report

    summary = periodic_report.delay().get(timeout=60)
"""

from __future__ import annotations

import dataclasses

from crawjud_tasks._contracts import task_contract

__all__ = ["PeriodicReport", "ReportRow", "periodic_report"]


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ReportRow:
    """One figure of a report, as the ``periodic_report`` template shows it."""

    label: str
    value: str


def _rows() -> list[ReportRow]:
    return []


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class PeriodicReport:
    """A ``periodic_report`` mail, dispatched."""

    #: The period covered (formatted in the ``timezone`` setting).
    period: str
    #: Seconds covered, up to when the report was made.
    seconds: float
    recipients: list[str]
    #: The figures mailed, in order.
    rows: list[ReportRow] = dataclasses.field(default_factory=_rows)
    #: The ``mail.send_email`` task that sends it.
    mail_task_id: str = ""


@task_contract("monitoring.periodic_report")
def periodic_report(to: list[str] | None = None, period: float | None = None) -> PeriodicReport:
    """Mail the task stats of the last ``period`` seconds (``monitoring.report_period``) to
    ``to`` (``monitoring.report_to``) with the ``periodic_report`` template."""
    raise NotImplementedError
