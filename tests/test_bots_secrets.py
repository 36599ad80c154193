"""Secret providers, resolution and the scrubber that masks secret values in a run's output."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from crawjud_tasks._secret import Secret
from crawjud_tasks.bots._secrets import (
    MIN_SCRUB_LENGTH,
    EnvSecretProvider,
    FileSecretProvider,
    Scrubber,
    SecretProvider,
    resolve_secret,
)
from crawjud_tasks.bots.contracts import Cell, SecretRef
from crawjud_tasks.errors import BotParameterError, CrawjudTasksError, SecretNotFoundError

VALUE = "s3cr3t-Value!"


class DictProvider:
    """A host's own provider: secrets from a dict (its repr names it, never a value)."""

    def __init__(self, values: dict[str, str]) -> None:
        self.values = values
        self.asked: list[str] = []

    def get(self, name: str) -> str | None:
        self.asked.append(name)
        return self.values.get(name)

    def __repr__(self) -> str:
        return "DictProvider()"


# -- the environment provider --


@pytest.mark.parametrize(
    ("name", "variable"),
    [
        ("projudi-ana", "CRAWJUD_SECRET_PROJUDI_ANA"),
        ("esaj.tj-sp", "CRAWJUD_SECRET_ESAJ_TJ_SP"),
        ("Mixed_Case9", "CRAWJUD_SECRET_MIXED_CASE9"),
    ],
)
def test_env_provider_maps_the_name_to_a_variable(name: str, variable: str) -> None:
    provider = EnvSecretProvider(environ={variable: VALUE})
    assert provider.variable(name) == variable
    assert provider.get(name) == VALUE


def test_env_provider_answers_none_for_an_unset_or_empty_variable() -> None:
    provider = EnvSecretProvider(environ={"CRAWJUD_SECRET_EMPTY": ""})
    assert provider.get("missing") is None
    assert provider.get("empty") is None


def test_env_provider_reads_the_process_environment_at_each_lookup(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    provider = EnvSecretProvider()
    monkeypatch.delenv("CRAWJUD_SECRET_LATE", raising=False)
    assert provider.get("late") is None
    monkeypatch.setenv("CRAWJUD_SECRET_LATE", VALUE)
    assert provider.get("late") == VALUE


def test_env_provider_with_its_own_prefix() -> None:
    provider = EnvSecretProvider("APP_", environ={"APP_TOKEN": VALUE, "CRAWJUD_SECRET_TOKEN": "x"})
    assert provider.get("token") == VALUE
    assert repr(provider) == "EnvSecretProvider(prefix='APP_')"


# -- the file provider --


def test_file_provider_strips_one_trailing_newline(tmp_path: Path) -> None:
    (tmp_path / "unix").write_bytes(b"value-1\n")
    (tmp_path / "windows").write_bytes(b"value-2\r\n")
    (tmp_path / "two").write_bytes(b"value-3\n\n")
    (tmp_path / "none").write_bytes(b" value 4 ")
    (tmp_path / "utf8").write_bytes("senha-çã\n".encode())
    provider = FileSecretProvider(tmp_path)
    assert provider.get("unix") == "value-1"
    assert provider.get("windows") == "value-2"
    assert provider.get("two") == "value-3\n"
    assert provider.get("none") == " value 4 "
    assert provider.get("utf8") == "senha-çã"


def test_file_provider_answers_none_for_an_absent_or_empty_file(tmp_path: Path) -> None:
    (tmp_path / "empty").write_bytes(b"\n")
    assert FileSecretProvider(tmp_path).get("absent") is None
    assert FileSecretProvider(tmp_path).get("empty") is None
    assert FileSecretProvider(tmp_path / "no-such-folder").get("absent") is None
    (tmp_path / "a-file").write_text("x")
    assert FileSecretProvider(tmp_path / "a-file").get("absent") is None


@pytest.mark.parametrize(
    "name",
    ["../outside", "..", ".", "sub/inner", "/etc/passwd", "a\\b", ".hidden", "..data", "a\0b", ""],
)
def test_file_provider_refuses_anything_but_a_plain_file_name(tmp_path: Path, name: str) -> None:
    folder = tmp_path / "secrets"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "inner").write_text(VALUE)
    (folder / ".hidden").write_text(VALUE)
    (tmp_path / "outside").write_text(VALUE)
    with pytest.raises(BotParameterError, match="plain file name") as caught:
        FileSecretProvider(folder).get(name)
    assert VALUE not in str(caught.value)


def test_file_provider_follows_a_kubernetes_style_symlink(tmp_path: Path) -> None:
    (tmp_path / "..data").mkdir()
    (tmp_path / "..data" / "projudi-ana").write_text(VALUE + "\n")
    (tmp_path / "projudi-ana").symlink_to(Path("..data") / "projudi-ana")
    assert FileSecretProvider(tmp_path).get("projudi-ana") == VALUE


def test_file_provider_names_an_unreadable_file_without_its_content(tmp_path: Path) -> None:
    (tmp_path / "binary").write_bytes(b"\xff\xfe" + VALUE.encode())
    with pytest.raises(SecretNotFoundError, match="not UTF-8") as caught:
        FileSecretProvider(tmp_path).get("binary")
    assert str(tmp_path / "binary") in str(caught.value)
    assert VALUE not in str(caught.value)
    (tmp_path / "folder").mkdir()
    with pytest.raises(SecretNotFoundError, match="cannot be read"):
        FileSecretProvider(tmp_path).get("folder")


def test_file_provider_repr_shows_the_folder() -> None:
    assert repr(FileSecretProvider(Path("/run/secrets"))) == "FileSecretProvider('/run/secrets')"


# -- resolution --


def test_the_first_provider_that_knows_the_name_wins(tmp_path: Path) -> None:
    (tmp_path / "projudi-ana").write_text("from-file")
    first = DictProvider({})
    providers: list[SecretProvider] = [
        first,
        EnvSecretProvider(environ={"CRAWJUD_SECRET_PROJUDI_ANA": "from-env"}),
        FileSecretProvider(tmp_path),
    ]
    secret = resolve_secret(SecretRef("projudi-ana"), providers)
    assert isinstance(secret, Secret)
    assert secret.reveal() == "from-env"
    assert first.asked == ["projudi-ana"]
    assert resolve_secret(SecretRef("projudi-ana"), providers[2:]).reveal() == "from-file"


def test_resolution_stops_at_the_first_provider_that_knows(tmp_path: Path) -> None:
    later = DictProvider({"token": "later"})
    assert resolve_secret(
        SecretRef("token"), [DictProvider({"token": "first"}), later]
    ).reveal() == ("first")
    assert later.asked == []


def test_not_found_names_the_ref_the_providers_and_the_fix(tmp_path: Path) -> None:
    environ = {"CRAWJUD_SECRET_OTHER": VALUE}
    folder = tmp_path / "secrets"
    folder.mkdir()
    (folder / "other").write_text(VALUE)
    providers: list[SecretProvider] = [
        EnvSecretProvider(environ=environ),
        FileSecretProvider(folder),
        DictProvider({"other": VALUE}),
    ]
    with pytest.raises(SecretNotFoundError) as caught:
        resolve_secret(SecretRef("projudi-ana"), providers)
    message = str(caught.value)
    assert "SecretRef(name='projudi-ana')" in message
    assert "EnvSecretProvider(prefix='CRAWJUD_SECRET_')" in message
    assert f"FileSecretProvider({str(folder)!r})" in message
    assert "DictProvider()" in message
    assert "set CRAWJUD_SECRET_PROJUDI_ANA in the worker's environment" in message
    assert f"put a file projudi-ana in {folder}" in message
    assert VALUE not in message
    assert "\n" not in message
    assert isinstance(caught.value, LookupError)
    assert isinstance(caught.value, CrawjudTasksError)


def test_no_provider_repr_shows_a_value(tmp_path: Path) -> None:
    (tmp_path / "projudi-ana").write_text(VALUE)
    providers: list[SecretProvider] = [
        EnvSecretProvider(environ={"CRAWJUD_SECRET_PROJUDI_ANA": VALUE}),
        FileSecretProvider(tmp_path),
    ]
    for provider in providers:
        assert provider.get("projudi-ana") == VALUE
        assert VALUE not in repr(provider)
        assert VALUE not in str(provider)


def test_not_found_with_only_providers_that_give_no_hint() -> None:
    with pytest.raises(SecretNotFoundError, match=r"tried DictProvider\(\)\); make one"):
        resolve_secret(SecretRef("x"), [DictProvider({})])


def test_not_found_with_no_provider() -> None:
    with pytest.raises(SecretNotFoundError, match="has none configured"):
        resolve_secret(SecretRef("x"), [])


def test_a_resolved_secret_does_not_show_itself() -> None:
    secret = resolve_secret(SecretRef("x"), [DictProvider({"x": VALUE})])
    assert VALUE not in repr(secret)
    assert VALUE not in f"{secret}"


# -- the scrubber --


def _scrubber(*values: str) -> Scrubber:
    return Scrubber(Secret(value) for value in values)


def test_scrub_masks_every_occurrence_of_every_secret() -> None:
    scrubber = _scrubber("hunter22", "tok-9f8e7d")
    text = "login ana/hunter22 failed; retry with hunter22, token tok-9f8e7d!"
    assert scrubber.scrub(text) == "login ana/*** failed; retry with ***, token ***!"


def test_scrub_masks_the_longest_secret_when_one_contains_another() -> None:
    scrubber = _scrubber("pass", "password123")
    assert scrubber.scrub("password123 and pass and password") == "*** and *** and ***word"


def test_scrub_leaves_no_fragment_of_overlapping_secrets() -> None:
    scrubber = _scrubber("abcdef", "defghi")
    assert scrubber.scrub("x abcdefghi y") == "x *** y"
    assert scrubber.scrub("abcdef defghi") == "*** ***"
    # A secret that overlaps itself.
    assert _scrubber("abab").scrub("<ababab>") == "<***>"


def test_scrub_at_the_edges_of_the_text() -> None:
    scrubber = _scrubber("secret-1")
    assert scrubber.scrub("secret-1") == "***"
    assert scrubber.scrub("secret-1secret-1") == "***"
    assert scrubber.scrub("secret-1 end") == "*** end"
    assert scrubber.scrub("start secret-1") == "start ***"
    assert scrubber.scrub("") == ""


def test_scrub_is_exact_and_case_sensitive() -> None:
    assert _scrubber("Secret-1").scrub("secret-1 SECRET-1 Secret-1") == "secret-1 SECRET-1 ***"


def test_scrub_with_regex_characters_in_a_secret() -> None:
    scrubber = _scrubber("a.b*c+(d)", "[x]|y")
    assert scrubber.scrub("a.b*c+(d) axb*c+(d) [x]|y") == "*** axb*c+(d) ***"


def test_text_without_secrets_comes_back_as_it_is() -> None:
    text = "nothing to hide here"
    assert _scrubber().scrub(text) is text
    assert _scrubber("hunter22").scrub(text) is text
    assert not _scrubber()
    assert _scrubber("hunter22")


def test_short_secrets_are_not_masked_and_a_warning_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    short = "a" * (MIN_SCRUB_LENGTH - 1)
    with caplog.at_level(logging.WARNING, logger="crawjud_tasks.bots.secrets"):
        scrubber = _scrubber(short, "", "long-one")
    assert scrubber.scrub(f"{short} long-one") == f"{short} ***"
    assert [r.levelno for r in caplog.records] == [logging.WARNING]
    assert short not in caplog.text
    assert _scrubber("a" * MIN_SCRUB_LENGTH).scrub("xaaaax") == "x***x"


def test_the_scrubber_repr_shows_no_value() -> None:
    scrubber = _scrubber("hunter22", "hunter22", "tok-9f8e7d")
    assert repr(scrubber) == "Scrubber(2 secrets)"


def test_scrub_cells_masks_text_and_number_cells() -> None:
    scrubber = _scrubber("hunter22", "4815162342")
    cells: dict[str, Cell] = {
        "NOTE": "password hunter22",
        "PIN": 4815162342,
        "CASE": 123456,
        "AMOUNT": 10.5,
        "FLAG": True,
        "EMPTY": None,
    }
    scrubbed = scrubber.scrub_cells(cells)
    assert scrubbed == {
        "NOTE": "password ***",
        "PIN": "***",
        "CASE": 123456,
        "AMOUNT": 10.5,
        "FLAG": True,
        "EMPTY": None,
    }
    assert cells["NOTE"] == "password hunter22"  # the input is not changed
    assert scrubbed is not cells


def test_scrub_cells_without_secrets_is_a_copy() -> None:
    cells: dict[str, Cell] = {"NOTE": "hunter22", "N": 1}
    scrubbed = _scrubber().scrub_cells(cells)
    assert scrubbed == cells
    assert scrubbed is not cells
