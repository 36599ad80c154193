"""``TypedResult[R]``: a Celery result whose ``get()`` gives back the declared type."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from celery.exceptions import SecurityError
from celery.exceptions import TimeoutError as CeleryTimeoutError
from kombu.exceptions import DecodeError

from crawjud_tasks._checks import is_connection_error
from crawjud_tasks.errors import (
    BrokerUnavailableError,
    ContractError,
    CrawjudTasksError,
    InvalidResultError,
    ResultTimeoutError,
    TaskFailedError,
)

if TYPE_CHECKING:
    from celery.result import AsyncResult, GroupResult

__all__ = ["TypedResult"]

R_co = TypeVar("R_co", covariant=True)

_FAILURE = "FAILURE"
_SUCCESS = "SUCCESS"


def _awaitable(raw: Any) -> bool:
    """Whether every task of ``raw`` keeps its result in Celery's Redis backend."""
    from crawjud_tasks._aio_results import awaitable_on_the_loop  # noqa: PLC0415

    members: list[Any] = list(getattr(raw, "results", None) or [raw])
    return all(not hasattr(m, "results") and awaitable_on_the_loop(m) for m in members)


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
        with self._backend_errors():
            if hasattr(raw, "results"):
                if raw.failed():
                    return _FAILURE
                return "SUCCESS" if raw.successful() else "PENDING"
            return str(raw.state)

    def ready(self) -> bool:
        """Whether the task has finished (succeeded or failed)."""
        with self._backend_errors():
            return bool(self._raw.ready())

    def successful(self) -> bool:
        """Whether the task finished and succeeded."""
        with self._backend_errors():
            return bool(self._raw.successful())

    def failed(self) -> bool:
        """Whether the task finished and failed."""
        with self._backend_errors():
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
            with self._backend_errors():
                value = self._raw.get(timeout=timeout, disable_sync_subtasks=False)
        except CeleryTimeoutError as exc:
            msg = f"no result for {self._name} {self.id} within {timeout} s; it may still run"
            raise ResultTimeoutError(msg) from exc
        except CrawjudTasksError:
            raise
        except Exception as exc:
            raise TaskFailedError(self.id, _qualified(type(exc)), str(exc)) from exc
        except BaseException as exc:
            # SystemExit, KeyboardInterrupt...: this process's own (Ctrl-C while waiting) go on;
            # one rebuilt from a stored result is data, whoever wrote it.
            if not _stored(self._raw, exc):
                raise
            raise TaskFailedError(self.id, _qualified(type(exc)), str(exc)) from None
        return self._decode(value)  # type: ignore[no-any-return]  # decode returns the declared R

    async def aget(self, timeout: float | None = None) -> R_co:
        """:meth:`get` for asyncio code: wait for the result on the event loop, without blocking it.

        On Celery's Redis result backend the wait subscribes to the result's key with redis-py's
        asyncio client (no thread per wait); on another backend it runs :meth:`get` in a thread.

        Args:
            timeout: Seconds to wait; ``None`` waits for ever.

        Raises:
            The errors of :meth:`get`, for the same reasons.
        """
        if self._ignored or not _awaitable(self._raw):
            return await asyncio.to_thread(self.get, timeout)
        from crawjud_tasks._aio_results import await_meta  # noqa: PLC0415  (asyncio Redis on use)

        members: list[Any] = list(getattr(self._raw, "results", None) or [self._raw])
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        values: list[Any] = []
        for member in members:
            left = None if deadline is None else max(0.0, deadline - loop.time())
            with self._backend_errors():
                meta = await await_meta(member, left)
            if meta is None:
                msg = f"no result for {self._name} {self.id} within {timeout} s; it may still run"
                raise ResultTimeoutError(msg)
            if meta["status"] != _SUCCESS:
                raise self._stored_failure(meta["result"])
            values.append(meta["result"])
        value = values if hasattr(self._raw, "results") else values[0]
        return self._decode(value)  # type: ignore[no-any-return]  # decode returns the declared R

    def _stored_failure(self, exc: object) -> BaseException:
        """The error :meth:`aget` raises for a stored failure (as :meth:`get` does)."""
        if isinstance(exc, CrawjudTasksError):
            return exc
        if isinstance(exc, BaseException):
            return TaskFailedError(self.id, _qualified(type(exc)), str(exc))
        return TaskFailedError(self.id, "celery.exceptions.TaskRevokedError", str(exc))

    @contextlib.contextmanager
    def _backend_errors(self) -> Generator[None, None, None]:
        """An unreachable result backend is BrokerUnavailableError, and a record that cannot be
        read is InvalidResultError; a task's own stored failure is left to :meth:`get`."""
        try:
            yield
        except CrawjudTasksError:
            raise
        except Exception as exc:
            if _stored(self._raw, exc):
                raise  # the task failed with it (a redis ConnectionError of its own, say)
            cause = exc.__cause__ if isinstance(exc, RuntimeError) else exc
            # Celery's Redis backend gives up reconnecting with a bare RuntimeError whose cause
            # is the connection error.
            # A connection error raised here (not as a cause) that is a plain OSError is no
            # answer about the backend: it is left alone.
            if is_connection_error(cause) and not (cause is exc and isinstance(exc, OSError)):
                raise self._unavailable(cause) from exc
            if isinstance(exc, ValueError | TypeError | KeyError | SecurityError | DecodeError):
                msg = (
                    f"the stored result of {self._name} {self.id} is no record a worker wrote "
                    f"({type(exc).__name__}: {exc}); forget it or look at who writes there"
                )
                raise InvalidResultError(msg) from exc
            raise

    def _unavailable(self, exc: BaseException) -> BrokerUnavailableError:
        msg = f"the result backend did not answer about {self._name} {self.id} ({exc})"
        return BrokerUnavailableError(msg)

    def forget(self) -> None:
        """Remove the stored result from the backend."""
        with self._backend_errors():
            self._raw.forget()

    def revoke(self, *, terminate: bool = False) -> None:
        """Ask the workers not to run the task (``terminate=True`` also stops it if running)."""
        with self._backend_errors():
            self._raw.revoke(terminate=terminate)


def _stored(raw: Any, exc: BaseException) -> bool:
    """Whether ``exc`` is the stored failure of ``raw``, of one of its parents (a chain) or of
    one of its members (a group), as Celery rebuilt it from the backend's record."""
    nodes = [raw]
    while nodes:
        node = nodes.pop()
        cache: Any = getattr(node, "_cache", None)  # the meta Celery read for a finished task
        if isinstance(cache, dict) and cache.get("result") is exc:  # pyright: ignore[reportUnknownMemberType]  (Celery's meta is an untyped dict)
            return True
        parent = getattr(node, "parent", None)
        if parent is not None:
            nodes.append(parent)
        nodes.extend(getattr(node, "results", None) or ())
    return False


def _qualified(cls: type[BaseException]) -> str:
    module = cls.__module__
    return cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"
