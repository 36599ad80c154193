"""Redaction of secrets in URLs and configuration values before they are shown anywhere."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from crawjud_tasks._guards import is_mapping

__all__ = ["REDACTED", "redact_mapping", "redact_url", "redact_value"]

REDACTED = "***"

#: Configuration keys whose values are secrets whatever they look like.
_SECRET_KEY = re.compile(r"pass(word)?|secret|token|credential|api_?key|private", re.IGNORECASE)
#: A query parameter whose name says secret, with its value.
_QUERY_SECRET = re.compile(
    rf"(?P<name>(?:^|(?<=[&;]))[^&;=]*(?:{_SECRET_KEY.pattern})[^&;=]*)=[^&;]*", re.IGNORECASE
)


def redact_url(url: str) -> str:
    """Return ``url`` with any password replaced by ``***``: the one in its user info, and the
    value of every query parameter whose name says secret (``?password=``, ``sentinel_password``,
    ``token``...).

    Several URLs joined by ``;`` (Celery's failover syntax) are redacted one by one.
    """
    if ";" in url:
        return ";".join(redact_url(part) for part in url.split(";"))
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return REDACTED  # not parseable: show nothing rather than a possible secret
    if password:
        userinfo, _, hostinfo = parts.netloc.rpartition("@")
        user = userinfo.partition(":")[0]
        parts = parts._replace(netloc=f"{user}:{REDACTED}@{hostinfo}")
    if parts.query:
        parts = parts._replace(query=_QUERY_SECRET.sub(rf"\g<name>={REDACTED}", parts.query))
    return urlunsplit(parts)


def redact_value(key: str, value: Any) -> Any:
    """Redact ``value`` when ``key`` names a secret or the value is a URL with a password."""
    if is_mapping(value):
        return redact_mapping(value)
    if _SECRET_KEY.search(key) and value not in (None, ""):
        return REDACTED
    if isinstance(value, str) and "://" in value:
        return redact_url(value)
    return value


def redact_mapping(mapping: Mapping[str, Any]) -> dict[str, Any]:
    """Return a copy of ``mapping`` with every secret redacted, recursively."""
    return {str(key): redact_value(str(key), value) for key, value in mapping.items()}
