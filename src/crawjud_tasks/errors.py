"""The one exception tree of crawjud-tasks.

Every error the library raises derives from :class:`CrawjudTasksError`, so a host catches all of
them with one ``except``. Errors from Redis, kombu and Celery are translated where they enter the
library (``raise ... from exc``), so the original stays available as ``__cause__``::

    CrawjudTasksError
    ├── SettingsError (also ValueError)        invalid settings: names the key, the expected and
    │                                           the received type, and the closest valid key
    ├── ContractError (also TypeError)         a task contract is declared or implemented wrongly
    ├── DispatchError (also ValueError)        a dispatch was refused before anything was sent
    │   └── VisibilityTimeoutError             a countdown, ETA or retry delay reaches the
    │                                           broker's visibility timeout
    ├── BrokerUnavailableError (also ConnectionError)
    │                                           the broker did not answer within the configured
    │                                           connection timeout
    ├── RedisFullError                          Redis answered but refused a write: it reached its
    │                                           ``maxmemory`` (no retry helps until memory is
    │                                           freed or the limit raised; not a ConnectionError)
    ├── EmbeddedRedisError (also RuntimeError) the embedded redis-server could not be found,
    │                                           started, reached or stopped
    ├── ResultTimeoutError (also TimeoutError) no result arrived within the time given to get()
    ├── ScheduleError (also ValueError)        a schedule was refused before anything was stored
    │   │                                       (a bad cron, zone, interval, task or argument)
    │   └── UnknownScheduleError (also LookupError)
    │                                           no schedule has the id given
    ├── TaskFailedError                         the task failed on the worker with an error that is
    │                                           not one of ours (its type and message are kept)
    ├── InvalidResultError (also ValueError)    a stored result is no record a worker wrote
    │                                           (malformed, or forged in the result backend)
    ├── LeaseError                              a run lease could not be taken or was lost
    │   ├── LeaseHeldError                      another holder has the lease and is alive
    │   │   └── DuplicateRunError               a second copy of a run while the first is alive
    │   └── LeaseLostError                      the holder lost its lease (expired, taken over)
    ├── TransientError                          a failure worth retrying (network, 4xx SMTP...)
    │   └── MailTemporaryError                  the mail server answered 4xx (try again later)
    └── PermanentError                          a failure that no retry can fix
        ├── PayloadError (also TypeError)       a message's arguments or a result do not fit the
        │                                        contract: names the field, expected and received
        ├── PoisonMessageError                  a message was delivered too many times (its worker
        │                                        died on each delivery) and is dropped
        ├── InvalidEmailError (also ValueError) an email was refused before sending: a bad
        │                                        address, a header with CR/LF/NUL, too many
        │                                        recipients, an attachment too big or outside the
        │                                        allowed roots, an unknown template or variable
        ├── MailRejectedError                   the mail server answered 5xx: its reply is kept
        ├── UnknownBotError (also LookupError)  no bot is registered under the key a run names
        ├── BotParameterError (also ValueError) a run's parameters do not fit the bot (an option,
        │                                        the input file, a secret reference)
        ├── SecretNotFoundError (also LookupError)
        │                                        no secret provider knows a SecretRef's name
        ├── ItemError                           raised by a bot: this item failed (the reason is
        │                                        recorded in the errors sheet), the run goes on
        ├── FatalBotError                       raised by a bot: the run cannot go on (it ends as
        │                                        failed, with a report of what was done)
        ├── UnsafePathError (also ValueError)   a maintenance path was refused: outside the roots,
        │                                        through a link, ``..``, NUL, or an unsafe root
        ├── ArchiveError (also ValueError)      a backup archive was refused: checksum mismatch,
        │                                        or a member that would write outside the target
        └── UnknownSyncJobError (also LookupError)
                                                 no data synchronisation job has the name given
    BackupError                                 a backup could not be written (disk full...): the
                                                 partial archive was removed, older ones are kept

Retry policies read the classification: :class:`TransientError` is retried, and
:class:`PermanentError` never is. A task raises them (or subclasses) to say which a failure is.
The domains (bots, mail, maintenance) add their errors under this root.
"""

from __future__ import annotations

__all__ = [
    "ArchiveError",
    "BackupError",
    "BotParameterError",
    "BrokerUnavailableError",
    "ContractError",
    "CrawjudTasksError",
    "DispatchError",
    "DuplicateRunError",
    "EmbeddedRedisError",
    "FatalBotError",
    "InvalidEmailError",
    "InvalidResultError",
    "ItemError",
    "LeaseError",
    "LeaseHeldError",
    "LeaseLostError",
    "MailRejectedError",
    "MailTemporaryError",
    "PayloadError",
    "PermanentError",
    "PoisonMessageError",
    "RedisFullError",
    "ResultTimeoutError",
    "ScheduleError",
    "SecretNotFoundError",
    "SettingsError",
    "TaskFailedError",
    "TransientError",
    "UnknownBotError",
    "UnknownScheduleError",
    "UnknownSyncJobError",
    "UnsafePathError",
    "VisibilityTimeoutError",
]


class CrawjudTasksError(Exception):
    """Root of every error raised by crawjud-tasks."""


class SettingsError(CrawjudTasksError, ValueError):
    """A setting is unknown, has the wrong type or an invalid value.

    The message names the setting (its dotted path, or its environment variable) and says how to
    fix it.
    """


class ContractError(CrawjudTasksError, TypeError):
    """A task contract is declared or implemented wrongly (for example implemented twice)."""


class DispatchError(CrawjudTasksError, ValueError):
    """A dispatch was refused before anything was sent; the message says what to change."""


class VisibilityTimeoutError(DispatchError):
    """A countdown, ETA or retry delay reaches the broker's visibility timeout.

    Redis redelivers a message that is not acknowledged within the visibility timeout, so a
    message held back longer than that would be delivered again and again.
    """


class BrokerUnavailableError(CrawjudTasksError, ConnectionError):
    """The broker could not be reached within the configured connection timeout."""


class RedisFullError(CrawjudTasksError):
    """Redis refused a write because it reached its ``maxmemory`` (``OOM command not allowed``).

    The server is up, so this is no :class:`BrokerUnavailableError` (nor a ``ConnectionError``):
    retry policies do not retry it, since waiting does not free memory. Free memory in Redis
    (expired results, old queues) or raise its ``maxmemory``; the message names the server.
    """


class EmbeddedRedisError(CrawjudTasksError, RuntimeError):
    """The embedded redis-server could not be found, started, reached or stopped."""


class ResultTimeoutError(CrawjudTasksError, TimeoutError):
    """No result arrived within the time given to ``get()``; the task may still run."""


class ScheduleError(CrawjudTasksError, ValueError):
    """A schedule was refused before anything was stored; the message says what was wrong."""


class UnknownScheduleError(ScheduleError, LookupError):
    """No schedule has the id given; the message names it."""


class TaskFailedError(CrawjudTasksError):
    """The task failed on the worker with an error that is not a crawjud-tasks error.

    Attributes:
        task_id: The failed task's id.
        remote_type: The qualified name of the error raised on the worker.
        remote_message: Its message.
    """

    def __init__(self, task_id: str, remote_type: str, remote_message: str) -> None:
        # All three in args, so that the error survives pickling and Celery's rebuilding.
        super().__init__(task_id, remote_type, remote_message)
        self.task_id = task_id
        self.remote_type = remote_type
        self.remote_message = remote_message

    def __str__(self) -> str:
        return f"task {self.task_id} failed: {self.remote_type}: {self.remote_message}"


class InvalidResultError(CrawjudTasksError, ValueError):
    """A stored result is no record a worker wrote: malformed, or forged in the result backend.

    Results are data: whatever a record holds, reading it raises this, never the error it names.
    """


class LeaseError(CrawjudTasksError):
    """A run lease could not be taken, or was lost."""


class LeaseHeldError(LeaseError):
    """Another holder has the lease and is still alive (its heartbeat renews it)."""

    #: The holder's label (``host:pid``), when known.
    holder: str | None = None
    #: Seconds before the lease expires unless renewed, when known.
    expires_in: float | None = None


class DuplicateRunError(LeaseHeldError):
    """A second copy of a run was refused: the first is still running."""


class LeaseLostError(LeaseError):
    """The holder lost its lease: it expired before a renewal, or another holder took it over."""


class TransientError(CrawjudTasksError):
    """A failure worth retrying: retry policies retry it (unless told otherwise)."""


class PermanentError(CrawjudTasksError):
    """A failure that no retry can fix: retry policies never retry it."""


class PayloadError(PermanentError, TypeError):
    """A message's arguments, or a task's result, do not fit the task's contract.

    The message names the field, the expected type and the received value's type.
    """


class PoisonMessageError(PermanentError):
    """A message was delivered too many times (its worker died on each) and was dropped.

    A record with the message id, the task name and the reason is kept under the namespace.
    """


class _ServerReply(CrawjudTasksError):
    """An error that carries the mail server's reply (both in ``args``, so that it survives
    pickling and Celery's rebuilding).

    Attributes:
        code: The SMTP reply code (0 when the connection itself failed).
        reply: The server's reply text.
    """

    def __init__(self, code: int, reply: str) -> None:
        super().__init__(code, reply)
        self.code = code
        self.reply = reply


class MailTemporaryError(_ServerReply, TransientError):
    """The mail server answered with a 4xx reply (or the connection failed): retried."""

    def __str__(self) -> str:
        return f"the mail server answered {self.code}: {self.reply}; it will be retried"


class InvalidEmailError(PermanentError, ValueError):
    """An email was refused before anything was sent; the message says what was wrong."""


class MailRejectedError(_ServerReply, PermanentError):
    """The mail server answered with a 5xx reply: the message will not be accepted as it is."""

    def __str__(self) -> str:
        return f"the mail server refused the message with {self.code}: {self.reply}"


class UnknownBotError(PermanentError, LookupError):
    """No bot is registered under the key a run names; the message lists the known keys."""


class BotParameterError(PermanentError, ValueError):
    """A run's parameters do not fit its bot: an unknown or mistyped option, an input file that
    is missing, unreadable or outside the allowed roots, or too many inline rows."""


class SecretNotFoundError(PermanentError, LookupError):
    """No secret provider of the worker knows the name a :class:`SecretRef` gives."""


class ItemError(PermanentError):
    """Raised by a bot's ``process``: this item failed for the reason given; the run goes on.

    The reason is recorded in the item's row of the errors sheet (keep credentials out of it).
    """


class FatalBotError(PermanentError):
    """Raised by a bot: the run cannot go on (the court site refused the login, say).

    The run stops, tears down, writes a report of what was done and ends as failed.
    """


class UnsafePathError(PermanentError, ValueError):
    """A maintenance path was refused: outside the configured roots, through a symbolic link,
    with ``..``, an absolute member path or a NUL byte, or a root that others may write to."""


class ArchiveError(PermanentError, ValueError):
    """A backup archive was refused before anything was restored: its checksum does not match,
    or a member would write outside the target (absolute, ``..``, a device, an outside link)."""


class BackupError(CrawjudTasksError):
    """A backup could not be written (the disk is full, say): the partial archive was removed
    and the older backups are kept."""


class UnknownSyncJobError(PermanentError, LookupError):
    """No data synchronisation job is registered under the name given; the message lists them."""
