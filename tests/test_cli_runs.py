"""How the CLI renders a run's events: progress lines, problems above them, a summary."""

from __future__ import annotations

import datetime as dt
import io
from typing import Any

import pytest

from crawjud_tasks._cli._progress import Progress
from crawjud_tasks.bots import RunEvent
from crawjud_tasks.bots.contracts import RunCounts, RunStatus

# -- the renderer, without Redis ---------------------------------------------------------------

T0 = dt.datetime(2026, 11, 3, 12, 0, tzinfo=dt.timezone.utc)


def event(kind: Any, second: float, **fields: Any) -> RunEvent:
    return RunEvent(
        id=f"{int(second * 1000)}-0",
        run_id="r1",
        kind=kind,
        time=T0 + dt.timedelta(seconds=second),
        **fields,
    )


def plain(events: list[RunEvent]) -> list[str]:
    out = io.StringIO()
    progress = Progress(out=out, tty=False, clock=lambda: 0.0)  # the clock never moves
    for item in events:
        progress.event(item)
    return out.getvalue().splitlines()


def test_plain_progress_lines_come_at_each_tenth_and_problems_above() -> None:
    events = [event("started", 0, counts=RunCounts(20), data={"bot": "b", "total": 20})]
    for i in range(1, 21):
        failed = 1 if i >= 5 else 0
        level = "error" if i == 5 else "success"
        counts = RunCounts(20, i - failed, failed)
        message = "not found" if i == 5 else None
        events.append(event("item", i, level=level, row=i + 1, counts=counts, message=message))
    events.insert(8, event("log", 7.5, level="warning", message="slow site"))
    events.insert(9, event("log", 7.6, level="info", message="not shown"))
    lines = plain(events)
    progress_lines = [line for line in lines if line.startswith("progress: ")]
    assert len(progress_lines) == 11  # at the start, then at each 10%
    assert progress_lines[-1] == "progress: 20/20 items (100%), 19 ok, 1 failed, 1.0 items/s"
    assert (
        progress_lines[1] == "progress: 2/20 items (10%), 2 ok, 0 failed, 1.0 items/s, 18.0 s left"
    )
    assert any(line.endswith("[row 6] error: not found") for line in lines)
    assert any(line.endswith("warning: slow site") for line in lines)
    assert not any("not shown" in line for line in lines)


def test_counts_come_from_progress_events_or_from_items_without_counts() -> None:
    # A parallel run: progress events carry the counts, item events may carry none.
    events = [
        event("started", 0, counts=RunCounts(10), data={"total": 10}),
        event("item", 1, level="success", row=2),
        event("item", 1.5, level="error", row=3, message="x"),
        event("progress", 2, counts=RunCounts(10, 4, 1, 1)),
        event("item", 3, level="info", row=9),
        event("progress", 4, counts=RunCounts(10, 9, 1, 0)),
    ]
    out = io.StringIO()
    progress = Progress(out=out, tty=False, clock=lambda: 0.0)
    seen = []
    for item in events:
        progress.event(item)
        seen.append(progress.counts)
    assert seen[1] == RunCounts(10, 1, 0, 0)
    assert seen[2] == RunCounts(10, 1, 1, 0)
    assert seen[3] == RunCounts(10, 4, 1, 1)
    assert seen[4] == RunCounts(10, 4, 1, 2)
    assert seen[5] == RunCounts(10, 9, 1, 0)
    assert progress.rate == pytest.approx(10 / 4)
    finished = event("finished", 4, counts=RunCounts(10, 9, 1), status=RunStatus.COMPLETED)
    progress.summary("r1", finished, None)
    assert "run r1 completed in 4.0 s" in out.getvalue()


def test_the_terminal_line_is_redrawn_in_place() -> None:
    out = io.StringIO()
    progress = Progress(out=out, tty=True, columns=80)
    progress.event(event("started", 0, counts=RunCounts(4), data={"total": 4}))
    for i in range(1, 5):
        progress.event(event("item", i, level="success", counts=RunCounts(4, i)))
    progress.event(event("finished", 5, counts=RunCounts(4, 4), status=RunStatus.COMPLETED))
    text = out.getvalue()
    assert "\r[--------------------] 0/4 0% | 0 ok 0 failed | --/s | ETA --\x1b[K" in text
    assert "\r[####################] 4/4 100% | 4 ok 0 failed | 1.0/s | ETA 0.0 s\x1b[K" in text
    assert text.endswith("\r\x1b[K")  # the line is cleared for the summary
