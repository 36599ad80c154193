"""One run of a bot, from the message to the result: the implementations of the bot-run
contracts.

initialise (find the bot, take the run's lease, check its options, read the input, resolve
the secrets, load the checkpoint, emit "started") -> ``setup`` -> each item not done yet (see
``_loop``) -> ``teardown`` -> report -> emit "finished" and store the result under the run id.
A run with ``parallelism`` > 1 becomes a chord of chunks (see ``_parallel``).

A run whose worker died is delivered again (at-least-once contract): the new delivery takes the
run's lease once the dead holder's has gone, reads the checkpoint and processes only the items
without a record. A run that ended answers a second delivery, or a second dispatch with the same
run id, with its stored result.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from crawjud_tasks.bots._loop import process
from crawjud_tasks.bots._outcome import finish, report, started
from crawjud_tasks.bots._parallel import execute_chunk, execute_failed, execute_finish, go_parallel
from crawjud_tasks.bots._parts import part_path
from crawjud_tasks.bots._run import Run
from crawjud_tasks.bots.contracts import (
    BotParameters,
    BotRunResult,
    ChunkResult,
    RunStatus,
    execute_bot,
    finish_run,
    run_chunk,
    run_failed,
)
from crawjud_tasks.errors import BotParameterError, SecretNotFoundError

if TYPE_CHECKING:
    import datetime as dt

    from celery import Celery

    from crawjud_tasks.bots._registry import BotFactory

__all__ = ["execute", "implement_run_contracts"]

_LOG = logging.getLogger("crawjud_tasks.bots")


def implement_run_contracts(app: Celery) -> None:
    """Bind the implementations of the bot-run contracts on ``app``."""

    @execute_bot.implement_bound(app)
    def _execute_bot(
        task: Any, bot_id: str, user_id: int | str, parameters: BotParameters
    ) -> BotRunResult:
        return execute(Run(app, task, bot_id, user_id, parameters))

    @run_chunk.implement_bound(app)
    def _run_chunk(  # noqa: PLR0917  (the contract's parameters, positional on the wire)
        task: Any,
        bot_id: str,
        user_id: int | str,
        parameters: BotParameters,
        run_id: str,
        task_id: str,
        chunk: int,
        start: int,
        stop: int,
    ) -> ChunkResult:
        run = Run(
            app, task, bot_id, user_id, parameters, task_id=task_id, run_id=run_id, chunk=chunk
        )
        return execute_chunk(run, start, stop)

    @finish_run.implement_bound(app)
    def _finish_run(  # noqa: PLR0917  (the contract's parameters, positional on the wire)
        task: Any,
        chunks: list[ChunkResult],
        bot_id: str,
        user_id: int | str,
        parameters: BotParameters,
        run_id: str,
        task_id: str,
        started_at: dt.datetime,
    ) -> BotRunResult:
        run = Run(app, task, bot_id, user_id, parameters, task_id=task_id, run_id=run_id)
        return execute_finish(run, chunks, started_at)

    @run_failed.implement_bound(app)
    def _run_failed(  # noqa: PLR0917  (the contract's parameters, positional on the wire)
        task: Any,
        failed_task_id: str,
        bot_id: str,
        user_id: int | str,
        parameters: BotParameters,
        run_id: str,
        task_id: str,
        chunks: int,
        started_at: dt.datetime,
    ) -> None:
        run = Run(app, task, bot_id, user_id, parameters, task_id=task_id, run_id=run_id)
        execute_failed(run, chunks, started_at)


def execute(run: Run) -> BotRunResult:
    """Run ``run`` (its result, or its stored one), or send its chunks (a parallel run)."""
    with run.stages() as stages:
        if stages.stored is not None:
            return stages.stored
        assert stages.factory is not None
        return _execute(run, stages.factory)


def _execute(run: Run, factory: BotFactory) -> BotRunResult:
    if run.store.cancel_requested():
        _LOG.info("run %s was cancelled before it started", run.run_id)
        return finish(run, RunStatus.CANCELLED, None, None)
    try:
        prepared = run.prepare(factory)
    except (BotParameterError, SecretNotFoundError) as exc:
        finish(run, RunStatus.FAILED, str(exc), None, store=False)
        raise
    total = prepared.index.total
    if run.parameters.parallelism > 1 and total > 1:
        return go_parallel(run, prepared)
    done = run.resume(prepared, 0, total)
    started(run, done)
    status, error = process(run, prepared, run.items(prepared, done, total), done)
    part = run.part
    assert part is not None
    part.close()
    parts = [part_path(run.output_dir(), None)]
    columns = prepared.index.columns
    return finish(
        run, status, error, report(run, columns, parts, part.returned, status=status, error=error)
    )
