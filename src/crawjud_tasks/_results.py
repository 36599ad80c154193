"""``TypedResult[R]``: a Celery result whose ``get()`` gives back the declared type."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from celery.exceptions import TimeoutError as CeleryTimeoutError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from crawjud_tasks.errors import (
    BrokerUnavailableError,
    ContractError,
    CrawjudTasksError,
    ResultTimeoutError,
    TaskFailedError,
)

if TYPE_CHECKING:
    from celery.result import AsyncResult, GroupResult

__all__ = ["TypedResult"]

R_co = TypeVar("R_co", covariant=True)

_FAILURE = "FAILURE"


class TypedResult(Generic[R_co]):
    """The handle of a dispatched task or workflow: its state, and its result as the declared type.

    ``get()`` rebuilds the JSON result into the contract's return type (dataclasses, TypedDicts,
    lists, enums, datetimes, optional and union types) with msgspec.
    """

    __slots__ = ("_decode", "_ignored", "_name", "_raw")

    def __init__(
        self,
        raw: AsyncResult[Any] | GroupResult,
        decode: Callable[[Any], Any],
        *,
        name: str,
        ignored: bool = False,
    ) -> None:
        self._raw = raw
        self._decode = decode
        self._name = name
        self._ignored = ignored

    def __repr__(self) -> str:
        return f"<TypedResult {self._name} {self.id}>"

    @property
    def id(self) -> str:
        """The task id (for a group, the group id)."""
        return str(self._raw.id)

    @property
    def raw(self) -> AsyncResult[Any] | GroupResult:
        """Celery's own result object, for tools that want it."""
        return self._raw

    @property
    def state(self) -> str:
        """Celery's state name: ``PENDING``, ``STARTED``, ``RETRY``, ``FAILURE``, ``SUCCESS``...

        A group is ``SUCCESS`` when every member succeeded, ``FAILURE`` when one failed, and
        ``PENDING`` until then.
        """
        raw: Any = self._raw
        if hasattr(raw, "results"):
            if raw.failed():
                return _FAILURE
            return "SUCCESS" if raw.successful() else "PENDING"
        return str(raw.state)

    def ready(self) -> bool:
        """Whether the task has finished (succeeded or failed)."""
        return bool(self._raw.ready())

    def successful(self) -> bool:
        """Whether the task finished and succeeded."""
        return bool(self._raw.successful())

    def failed(self) -> bool:
        """Whether the task finished and failed."""
        return bool(self._raw.failed())

    def get(self, timeout: float | None = None) -> R_co:
        """Wait for the result and return it as the declared type.

        Args:
            timeout: Seconds to wait; ``None`` waits for ever.

        Raises:
            ResultTimeoutError: no result within ``timeout`` (the task may still run).
            CrawjudTasksError: the task failed with one of the library's errors (re-raised as is,
                e.g. :class:`PayloadError`).
            TaskFailedError: the task failed with another error (its type and message kept).
            BrokerUnavailableError: the result backend could not be reached.
            ContractError: the contract returns ``None``, so no result is stored to wait for.
        """
        if self._ignored:
            msg = (
                f"{self._name} returns None, so its result is not stored and cannot be waited "
                "for; return a value from the contract to wait for it"
            )
            raise ContractError(msg)
        try:
            value = self._raw.get(timeout=timeout, disable_sync_subtasks=False)
        except CeleryTimeoutError as exc:
            msg = f"no result for {self._name} {self.id} within {timeout} s; it may still run"
            raise ResultTimeoutError(msg) from exc
        except CrawjudTasksError:
            raise
        except (RedisConnectionError, RedisTimeoutError) as exc:
            msg = f"the result backend did not answer while waiting for {self._name} ({exc})"
            raise BrokerUnavailableError(msg) from exc
        except Exception as exc:
            raise TaskFailedError(self.id, _qualified(type(exc)), str(exc)) from exc
        return self._decode(value)  # type: ignore[no-any-return]  # decode returns the declared R

    def forget(self) -> None:
        """Remove the stored result from the backend."""
        self._raw.forget()

    def revoke(self, *, terminate: bool = False) -> None:
        """Ask the workers not to run the task (``terminate=True`` also stops it if running)."""
        self._raw.revoke(terminate=terminate)


def _qualified(cls: type[BaseException]) -> str:
    module = cls.__module__
    return cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"
