"""Settings: validation messages, environment parsing, redaction."""

from __future__ import annotations

from pathlib import Path

import pytest

from crawjud_tasks import BotSettings, CrawjudTasksError, Secret, Settings, SettingsError


def _error(mapping: dict[str, object]) -> str:
    with pytest.raises(SettingsError) as info:
        Settings.from_mapping(mapping)
    return str(info.value)


def test_defaults_are_the_documented_ones() -> None:
    settings = Settings()
    assert settings.broker_url is None
    assert settings.namespace == "crawjud"
    assert settings.timezone == "America/Sao_Paulo"
    assert settings.broker_connection_timeout == 5.0
    assert settings.task_events is False
    assert dict(settings.queue_names) == {
        "default": "crawjud",
        "bots": "crawjud.bots",
        "mail": "crawjud.mail",
        "maintenance": "crawjud.maintenance",
    }
    assert settings.key_prefix == "crawjud:"


def test_settings_are_frozen() -> None:
    settings = Settings()
    with pytest.raises(AttributeError):
        settings.namespace = "other"  # type: ignore[misc]  # the point: a frozen field refuses it
    with pytest.raises(TypeError):
        settings.celery["worker_concurrency"] = 4  # type: ignore[index]  # the point: read-only


def test_settings_error_is_a_value_error_and_ours() -> None:
    assert issubclass(SettingsError, ValueError)
    assert issubclass(SettingsError, CrawjudTasksError)


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        ({"brokr_url": "redis://x"}, "unknown setting 'brokr_url'; did you mean 'broker_url'?"),
        ({"mail": {"hots": "smtp"}}, "unknown setting 'mail.hots'; did you mean 'mail.host'?"),
        ({"zzz": 1}, "unknown setting 'zzz'; valid names are: bots, broker_connection_timeout"),
        ({"mail": {"port": "abc"}}, "setting 'mail.port' expects int, got str 'abc'"),
        ({"task_events": "yes"}, "setting 'task_events' expects bool, got str 'yes'"),
        ({"data_dir": 5}, "setting 'data_dir' expects path, got int 5"),
        ({"mail": 5}, "setting 'mail' expects mapping, got int 5"),
        (
            {"bots": {"allowed_roots": "/x"}},
            "setting 'bots.allowed_roots' expects list, got str '/x'",
        ),
        (
            {"mail": {"security": "ssl"}},
            "setting 'mail.security' must be one of 'starttls', 'tls', 'none', got 'ssl'",
        ),
        ({"mail": {"port": 0}}, "setting 'mail.port' must be a TCP port (1-65535), got 0"),
        ({"broker_connection_timeout": 0}, "'broker_connection_timeout' must be greater than 0"),
        ({"timezone": "Mars/Olympus"}, "'timezone' must be an IANA zone"),
        ({"namespace": "bad name"}, "setting 'namespace' must be letters, digits"),
        (
            {"broker_url": "http://user:hunter2@host"},
            "setting 'broker_url' must be a URL with one of the schemes",
        ),
        (
            {"celery": {"worker_prefech_multiplier": 1}},
            "unknown Celery setting 'celery.worker_prefech_multiplier'; "
            "did you mean 'celery.worker_prefetch_multiplier'?",
        ),
        (
            {"celery": {"accept_content": ["pickle"]}},
            "setting 'celery.accept_content' is fixed by crawjud-tasks; "
            "crawjud-tasks accepts JSON only",
        ),
        (
            {"celery": {"broker_url": "redis://x"}},
            "setting 'celery.broker_url' is fixed by crawjud-tasks; use the setting 'broker_url'",
        ),
        (
            {"celery": {"broker_transport_options": {"visibility_timeout": 5}}},
            "'celery.broker_transport_options.visibility_timeout' is set by crawjud-tasks; "
            "use the setting 'visibility_timeout'",
        ),
    ],
)
def test_invalid_settings_say_what_and_how(mapping: dict[str, object], message: str) -> None:
    assert message in _error(mapping)


def test_error_messages_are_one_line_and_never_show_secrets() -> None:
    text = _error({"broker_url": "http://user:hunter2@host"})
    assert "\n" not in text
    assert "hunter2" not in text
    assert "***" in text


def test_a_mapping_of_valid_settings_is_typed() -> None:
    settings = Settings.from_mapping(
        {
            "broker_url": "redis://127.0.0.1:6379/0",
            "mail": {"host": "smtp.example.org", "port": 465, "security": "tls", "password": "pw"},
            "bots": {"allowed_roots": ["/srv/in"]},
            "celery": {"worker_prefetch_multiplier": 1},
        }
    )
    assert settings.mail.port == 465
    assert settings.mail.password == Secret("pw")
    assert settings.bots.allowed_roots == (Path("/srv/in"),)
    assert settings.celery["worker_prefetch_multiplier"] == 1


def test_environment_rule() -> None:
    settings = Settings.from_env(
        {
            "CRAWJUD_TASKS_BROKER_URL": "redis://:pw@127.0.0.1:6379/0",
            "CRAWJUD_TASKS_MAIL__HOST": "smtp.example.org",
            "CRAWJUD_TASKS_MAIL__PORT": "2525",
            "crawjud_tasks_task_events": "true",
            "CRAWJUD_TASKS_BOTS__ALLOWED_ROOTS": "/a, /b",
            "CRAWJUD_TASKS_MAINTENANCE__ROOTS": '["/c"]',
            "CRAWJUD_TASKS_CELERY__WORKER_PREFETCH_MULTIPLIER": "1",
            "CRAWJUD_TASKS_CELERY__WORKER_HIJACK_ROOT_LOGGER": "false",
            "CRAWJUD_TASKS_QUEUES__BOTS": "",
            "OTHER_VARIABLE": "ignored",
        }
    )
    assert settings.broker_url == "redis://:pw@127.0.0.1:6379/0"
    assert settings.mail.host == "smtp.example.org"
    assert settings.mail.port == 2525
    assert settings.task_events is True
    assert settings.bots.allowed_roots == (Path("/a"), Path("/b"))
    assert settings.maintenance.roots == (Path("/c"),)
    assert settings.celery["worker_prefetch_multiplier"] == 1
    assert settings.celery["worker_hijack_root_logger"] is False
    assert settings.queues.bots is None


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        (
            {"CRAWJUD_TASKS_MAIL__HOTS": "x"},
            "unknown environment variable CRAWJUD_TASKS_MAIL__HOTS; "
            "did you mean CRAWJUD_TASKS_MAIL__HOST?",
        ),
        (
            {"CRAWJUD_TASKS_BROKR_URL": "x"},
            "unknown environment variable CRAWJUD_TASKS_BROKR_URL; "
            "did you mean CRAWJUD_TASKS_BROKER_URL?",
        ),
        (
            {"CRAWJUD_TASKS_MAIL__PORT": "abc"},
            "CRAWJUD_TASKS_MAIL__PORT (setting 'mail.port') expects int, got str 'abc'",
        ),
        (
            {"CRAWJUD_TASKS_MAIL__PORT": "0"},
            "CRAWJUD_TASKS_MAIL__PORT: setting 'mail.port' must be a TCP port (1-65535), got 0",
        ),
        (
            {"CRAWJUD_TASKS_CELERY__NOT_A_SETTING": "1"},
            "CRAWJUD_TASKS_CELERY__NOT_A_SETTING: unknown Celery setting 'celery.not_a_setting'; "
            "no valid name is close to it; see https://docs.celeryq.dev/",
        ),
    ],
)
def test_invalid_environment_names_the_variable(environ: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError) as info:
        Settings.from_env(environ)
    assert message in str(info.value)


def test_to_env_rebuilds_the_same_settings() -> None:
    settings = Settings.from_mapping(
        {
            "broker_url": "redis://:pw@127.0.0.1:1/0",
            "namespace": "acme",
            "task_events": True,
            "mail": {"password": "s3cret", "port": 25},
            "bots": {"allowed_roots": ["/a", "/b"]},
            "celery": {
                "worker_prefetch_multiplier": 1,
                "task_annotations": {"*": {"rate_limit": "1/s"}},
            },
        }
    )
    assert Settings.from_env(settings.to_env()) == settings


def test_repr_and_to_dict_redact_every_secret() -> None:
    settings = Settings.from_mapping(
        {
            "broker_url": "redis://user:hunter2@127.0.0.1:6379/0",
            "result_backend": "redis://:hunter3@127.0.0.1:6379/1;redis://:hunter4@127.0.0.2/1",
            "mail": {"password": "hunter5", "username": "bot"},
            "celery": {
                "redis_password": "hunter6",
                "broker_transport_options": {"sentinel_kwargs": {"password": "hunter7"}},
            },
        }
    )
    for text in (
        repr(settings),
        str(settings),
        str(settings.to_dict()),
        repr(settings.mail),
        f"{settings.mail.password}",
    ):
        for secret in ("hunter2", "hunter3", "hunter4", "hunter5", "hunter6", "hunter7"):
            assert secret not in text
    assert "redis://user:***@127.0.0.1:6379/0" in repr(settings)
    assert settings.mail.password is not None
    assert settings.mail.password.reveal() == "hunter5"
    assert settings.to_dict(redact=False)["mail"]["password"] == "hunter5"


def test_secret_cannot_be_pickled() -> None:
    import pickle

    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(Secret("x"))


def test_load_settings_refuses_other_types(clean_env: None) -> None:
    from crawjud_tasks import create_app

    with pytest.raises(
        SettingsError, match=r"config must be a crawjud_tasks\.Settings, a mapping or None, got int"
    ):
        create_app(5)  # type: ignore[arg-type]  # the point: an untyped caller passes an int


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        ({"result_expires": float("inf")}, "setting 'result_expires' must be a finite number"),
        ({"bots": {"retention": 1e400}}, "setting 'bots.retention' must be a finite number"),
        ({"mail": {"timeout": float("nan")}}, "setting 'mail.timeout' must be a finite number"),
        (
            {"monitoring": {"metrics_flush_interval": float("inf")}},
            "setting 'monitoring.metrics_flush_interval' must be a finite number",
        ),
        ({"data_dir": "/tmp/a\x00b"}, "setting 'data_dir' has a NUL byte"),
        ({"bots": {"allowed_roots": ["/srv/in", ""]}}, "setting 'bots.allowed_roots' holds '.'"),
        ({"bots": {"allowed_roots": ["relative/in"]}}, "must be absolute folders"),
        ({"maintenance": {"roots": ["."]}}, "setting 'maintenance.roots' holds '.'"),
    ],
)
def test_values_that_would_fail_later_are_refused_now(
    mapping: dict[str, object], message: str
) -> None:
    """inf fails later with OverflowError, NUL in a path at the first open, and '' as a root is
    silently the worker's current folder (issue 13, item 15)."""
    text = _error(mapping)
    assert message in text
    assert "\n" not in text


def test_inf_from_the_environment_is_refused() -> None:
    with pytest.raises(SettingsError, match="'visibility_timeout' must be a finite number"):
        Settings.from_env({"CRAWJUD_TASKS_VISIBILITY_TIMEOUT": "inf"})


def test_the_same_rules_hold_for_settings_built_directly() -> None:
    with pytest.raises(SettingsError, match="'idempotency_ttl' must be a finite number"):
        Settings(idempotency_ttl=float("inf"))
    with pytest.raises(SettingsError, match=r"'bots\.allowed_roots' holds '\.'"):
        Settings(bots=BotSettings(allowed_roots=(Path(""),)))


def test_home_relative_roots_are_accepted() -> None:
    settings = Settings.from_mapping({"bots": {"allowed_roots": ["~/crawjud/in", "/srv/in"]}})
    assert settings.bots.allowed_roots == (Path("~/crawjud/in"), Path("/srv/in"))


def test_tls_and_strict_redis_from_the_environment(tmp_path: Path) -> None:
    ca_file = tmp_path / "ca.pem"
    ca_file.write_text("-----BEGIN CERTIFICATE-----\n")
    settings = Settings.from_env(
        {
            "CRAWJUD_TASKS_TLS__CA_FILE": str(ca_file),
            "CRAWJUD_TASKS_TLS__VERIFY": "false",
            "CRAWJUD_TASKS_STRICT_REDIS": "true",
        }
    )
    assert settings.tls.ca_file == ca_file
    assert settings.tls.verify is False
    assert settings.strict_redis is True
    assert Settings.from_env(settings.to_env()) == settings


def test_a_missing_ca_file_is_refused_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"^setting 'tls.ca_file' is .*, which is no file;"):
        Settings.from_mapping({"tls": {"ca_file": str(tmp_path / "none.pem")}})
