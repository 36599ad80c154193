"""Broker retries: a failure the policy retries goes back to the broker with its countdown.

``implement(app, retry=policy)``: the countdown is the one the policy computes (fractional
seconds kept), logged once with the attempt number and the wait. The policy's overall timeout
counts from the first attempt, whose time travels in a header across retries.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from crawjud_tasks._delivery._execution import Step
    from crawjud_tasks._retry import RetryPolicy

__all__ = ["FIRST_ATTEMPT_HEADER", "BrokerRetries"]

#: Header with the time (UNIX seconds) the first attempt started, carried across retries.
FIRST_ATTEMPT_HEADER = "crawjud_first_attempt"

_LOG = logging.getLogger("crawjud_tasks.worker")


class BrokerRetries:
    """The guarantee: a failed run is retried through the broker as ``policy`` says."""

    __slots__ = ("policy",)

    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy

    def wrap(self, proceed: Step) -> Step:
        policy = self.policy

        def attempt(task: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            request = task.request
            headers: dict[str, Any] = dict(request.headers or {})
            first = float(headers.setdefault(FIRST_ATTEMPT_HEADER, time.time()))
            try:
                return proceed(task, args, kwargs)
            except Exception as exc:
                retries = int(request.retries or 0)
                delay = policy.next_delay(retries, time.time() - first, exc)
                if delay is None:
                    raise
                _LOG.warning(
                    "%s[%s]: attempt %d of %d failed with %s; retrying in %.2f s",
                    task.name,
                    request.id,
                    retries + 1,
                    policy.attempts,
                    type(exc).__name__,
                    delay,
                )
                raise task.retry(exc=exc, countdown=delay, headers=headers) from exc

        return attempt
