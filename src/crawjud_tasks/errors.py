"""The one exception tree of crawjud-tasks.

Every error the library raises derives from :class:`CrawjudTasksError`, so a host catches all of
them with one ``except``. Errors from Redis, kombu and Celery are translated where they enter the
library (``raise ... from exc``), so the original stays available as ``__cause__``::

    CrawjudTasksError
    ├── SettingsError (also ValueError)       invalid settings: names the key, the expected and
    │                                          the received type, and the closest valid key
    ├── BrokerUnavailableError (also ConnectionError)
    │                                          the broker did not answer within the configured
    │                                          connection timeout
    └── EmbeddedRedisError (also RuntimeError) the embedded redis-server could not be found,
                                               started, reached or stopped

Later domains (payloads, retries, bots, mail) add their errors under this root.
"""

from __future__ import annotations

__all__ = [
    "BrokerUnavailableError",
    "CrawjudTasksError",
    "EmbeddedRedisError",
    "SettingsError",
]


class CrawjudTasksError(Exception):
    """Root of every error raised by crawjud-tasks."""


class SettingsError(CrawjudTasksError, ValueError):
    """A setting is unknown, has the wrong type or an invalid value.

    The message names the setting (its dotted path, or its environment variable) and says how to
    fix it.
    """


class BrokerUnavailableError(CrawjudTasksError, ConnectionError):
    """The broker could not be reached within the configured connection timeout."""


class EmbeddedRedisError(CrawjudTasksError, RuntimeError):
    """The embedded redis-server could not be found, started, reached or stopped."""
