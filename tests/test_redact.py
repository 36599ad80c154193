"""Passwords never leave in a URL, wherever the URL carries them (issue 13, item 11)."""

from __future__ import annotations

import pytest

from crawjud_tasks._redact import redact_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:hunter2@host:6379/0", "redis://:***@host:6379/0"),
        ("redis://host:6379/1?password=hunter2", "redis://host:6379/1?password=***"),
        (
            "rediss://host/0?ssl_cert_reqs=required&password=hunter2&db=1",
            "rediss://host/0?ssl_cert_reqs=required&password=***&db=1",
        ),
        (
            "sentinel://h:26379;sentinel://h2:26379?sentinel_password=s3",
            "sentinel://h:26379;sentinel://h2:26379?sentinel_password=***",
        ),
        ("amqp://u:p%40ss@host//", "amqp://u:***@host//"),
        ("redis://host/0?PASSWORD=hunter2", "redis://host/0?PASSWORD=***"),
        ("redis://host/0?token=t0k&x=1", "redis://host/0?token=***&x=1"),
        ("redis://host:6379/0", "redis://host:6379/0"),
    ],
)
def test_passwords_in_the_userinfo_and_in_the_query_are_redacted(url: str, shown: str) -> None:
    assert redact_url(url) == shown
