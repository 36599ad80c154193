"""The worker's side of at-least-once delivery when a pool process dies mid-run.

Celery requeues the message of a task whose pool process died (``reject_on_worker_lost``) at
once, while the dead process's run lease still looks alive for up to its ttl: the next delivery
would be dropped as a live duplicate, and its message acknowledged and lost. The worker's main
process knows the pool process is gone, so it frees that lease before the message is requeued.

Imported by the worker only (at ``worker_init``): a host service never loads Celery's worker
modules.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

from billiard.einfo import ExceptionWithTraceback  # type: ignore[attr-defined]  # pyright: ignore[reportAttributeAccessIssue, reportUnknownVariableType]  (missing from celery-types' billiard stubs)
from billiard.exceptions import WorkerLostError
from celery.worker.request import Request

from crawjud_tasks._delivery._leases import lease_owner
from crawjud_tasks._keys import task_lease_name
from crawjud_tasks._lease import evict
from crawjud_tasks._tasks import CrawjudTask
from crawjud_tasks.errors import BrokerUnavailableError

if TYPE_CHECKING:
    from celery import Celery

__all__ = ["RunRequest", "use_run_requests"]

_LOG = logging.getLogger("crawjud_tasks.worker")
_DEFAULT_REQUEST = "celery.worker.request:Request"
_RUN_REQUEST = f"{__name__}:RunRequest"


class RunRequest(Request):
    """A request of an at-least-once task: frees the run lease of a pool process that died."""

    def on_failure(
        self, exc_info: Any, send_failed_event: bool = True, return_ok: bool = False
    ) -> None:
        exc = exc_info.exception
        if isinstance(exc, ExceptionWithTraceback):
            exc = exc.exc
        pid: int | None = self.worker_pid  # type: ignore[assignment]  # pyright: ignore[reportAssignmentType]  (a process id; celery-types says str)
        # Billiard reports a pool process that exited as WorkerLostError (or, since 4.3, as the
        # SystemExit it exited with); the run lease is that process's, never this one's.
        lost = isinstance(exc, (WorkerLostError, SystemExit, KeyboardInterrupt))
        if lost and pid is not None and pid != os.getpid():
            try:
                retries: Any = self.request_dict.get("retries")
                key = task_lease_name(self.task.name, self.id, retries)
                evict(self.task.app, key, lease_owner(pid))
            except BrokerUnavailableError as error:
                _LOG.warning(
                    "%s[%s]: the run lease of the lost process %s was not freed (it expires "
                    "by itself): %s",
                    self.task.name,
                    self.id,
                    pid,
                    error,
                )
        super().on_failure(exc_info, send_failed_event=send_failed_event, return_ok=return_ok)


def use_run_requests(app: Celery) -> None:
    """Give ``app``'s at-least-once CrawJUD tasks the :class:`RunRequest` (at worker start)."""
    for task in app.tasks.values():
        if (
            isinstance(task, CrawjudTask)
            and task.acks_late
            and task.reject_on_worker_lost
            and task.Request == _DEFAULT_REQUEST
        ):
            task.Request = _RUN_REQUEST
