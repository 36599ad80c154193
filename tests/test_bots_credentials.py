"""A raw credential never reaches a message (issue 13, item 14): option names that look like one
and a plain string where a SecretRef belongs are refused before anything is sent."""

from __future__ import annotations

from typing import Any

import pytest
from celery import Celery

from crawjud_tasks.bots.contracts import BotInput, BotParameters, SecretRef, execute_bot
from crawjud_tasks.errors import PayloadError
from crawjud_tasks.testing import RedisServer


def rows(n: int) -> BotInput:
    return BotInput.inline([{"NUMERO": str(i)} for i in range(n)])


@pytest.mark.parametrize(
    "name",
    [
        "senha",
        "password",
        "pwd",
        "user_pwd",
        "passwd",
        "ssh_key",
        "sshKey",
        "private_key",
        "access_key",
        "api-key",
        "client_secret",
        "auth_token",
        "session_cookie",
        "bearer",
        "certificado_pfx",
        "otp",
    ],
)
def test_an_option_named_like_a_credential_is_refused(name: str) -> None:
    with pytest.raises(PayloadError, match=rf"option {name!r} looks like a credential"):
        BotParameters(input=rows(1), options={name: "hunter2"})


@pytest.mark.parametrize("name", ["tribunal", "author", "autor", "keyword", "passo", "pinned"])
def test_ordinary_option_names_are_accepted(name: str) -> None:
    assert BotParameters(input=rows(1), options={name: "x"}).options == {name: "x"}


@pytest.mark.parametrize("value", ["hunter2", b"hunter2", {"name": "x", "value": "hunter2"}])
def test_anything_but_a_secret_ref_as_credentials_is_refused(value: Any) -> None:
    with pytest.raises(PayloadError, match=r"credentials takes SecretRef\(name\)"):
        BotParameters(input=rows(1), credentials=value)
    with pytest.raises(PayloadError) as info:
        BotParameters(input=rows(1), credentials=value)
    assert "hunter2" not in str(info.value)


def test_a_raw_credential_in_an_untyped_dispatch_never_reaches_the_broker(
    crawjud_app: Celery, crawjud_redis: RedisServer
) -> None:
    """A host that passes the parameters as plain data is checked at dispatch too."""
    parameters: Any = {"input": {"rows": [{"NUMERO": "1"}]}, "credentials": "hunter2"}
    with pytest.raises(PayloadError):
        execute_bot.using(crawjud_app).delay("test.echo", 7, parameters)
    broker = crawjud_redis.client(0)
    try:
        for key in broker.scan_iter():
            if broker.type(key) == b"list":
                assert not any(b"hunter2" in item for item in broker.lrange(key, 0, -1))
    finally:
        broker.close()


def test_a_secret_ref_is_accepted() -> None:
    parameters = BotParameters(input=rows(1), credentials=SecretRef("projudi-ana"))
    assert parameters.credentials == SecretRef("projudi-ana")
