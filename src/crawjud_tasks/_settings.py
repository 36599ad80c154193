"""Typed, frozen, validated settings.

Settings are built once, from a mapping (:meth:`Settings.from_mapping`), from environment variables
(:meth:`Settings.from_env`) or directly, and validated once. Every error is a
:class:`~crawjud_tasks.errors.SettingsError` whose one-line message names the setting and says how
to fix it.

Environment rule: ``CRAWJUD_TASKS_<SETTING>``, with ``__`` between a section and its field
(``CRAWJUD_TASKS_MAIL__HOST``); names are case-insensitive; list values are a JSON array or a
comma-separated list; booleans are ``true``/``false``/``1``/``0``; an empty value means "not set"
for optional settings; ``CRAWJUD_TASKS_CELERY__<NAME>`` passes a Celery setting through, its value
parsed as JSON when it is valid JSON and taken as a string otherwise.
``CRAWJUD_TASKS_RETRY_WAITS`` is a process switch of the retry policies (see
:mod:`crawjud_tasks._retry`), not a setting: :meth:`Settings.from_env` passes over it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, get_args, get_origin, get_type_hints

import msgspec

from crawjud_tasks._guards import is_dict, is_list, is_list_or_tuple, is_mapping, is_mapping_proxy
from crawjud_tasks._redact import REDACTED, redact_mapping, redact_url
from crawjud_tasks._secret import Secret
from crawjud_tasks._settings_sections import (
    DOMAINS,
    BotSettings,
    MailSettings,
    MaintenanceSettings,
    MonitoringSettings,
    QueueSettings,
    SchedulesSettings,
    TlsSettings,
)
from crawjud_tasks._settings_values import check_values, suggest
from crawjud_tasks.errors import SettingsError

__all__ = [
    "DEFAULT_BROKER_CONNECTION_TIMEOUT",
    "DEFAULT_IDEMPOTENCY_TTL",
    "DEFAULT_NAMESPACE",
    "DEFAULT_RESULT_EXPIRES",
    "DEFAULT_TIMEZONE",
    "DEFAULT_VISIBILITY_TIMEOUT",
    "DOMAINS",
    "ENV_PREFIX",
    "PROCESS_SWITCHES",
    "RETRY_WAITS_ENV",
    "BotSettings",
    "MailSettings",
    "MaintenanceSettings",
    "MonitoringSettings",
    "QueueSettings",
    "SchedulesSettings",
    "Settings",
    "TlsSettings",
    "load_settings",
]

DEFAULT_NAMESPACE = "crawjud"
DEFAULT_TIMEZONE = "America/Sao_Paulo"
DEFAULT_BROKER_CONNECTION_TIMEOUT = 5.0
DEFAULT_VISIBILITY_TIMEOUT = 3600.0
DEFAULT_RESULT_EXPIRES = 86400.0
DEFAULT_IDEMPOTENCY_TTL = 86400.0
DEFAULT_MAX_MESSAGE_BYTES = 16 * 1024 * 1024
ENV_PREFIX = "CRAWJUD_TASKS_"
#: ``0`` turns retry waits off in a process (tests); read by :mod:`crawjud_tasks._retry`.
RETRY_WAITS_ENV = f"{ENV_PREFIX}RETRY_WAITS"
#: Variables under the prefix that switch a process's behaviour and are not settings.
PROCESS_SWITCHES = frozenset({RETRY_WAITS_ENV})


def _frozen_mapping() -> Mapping[str, Any]:
    return MappingProxyType({})


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class Settings:
    """Every setting of crawjud-tasks, typed, frozen and validated once.

    Build it with :meth:`from_mapping` or :meth:`from_env` to validate untrusted input (unknown
    keys and wrong types are refused); a direct call validates values but trusts the types.
    ``repr`` redacts every secret.
    """

    #: Broker URL; ``None`` starts (or attaches to) the embedded Redis in ``data_dir``.
    broker_url: str | None = None
    #: Result backend URL; ``None`` uses the broker's Redis.
    result_backend: str | None = None
    #: Seconds a dispatch may wait for an unreachable broker before BrokerUnavailableError.
    broker_connection_timeout: float = DEFAULT_BROKER_CONNECTION_TIMEOUT
    #: Prefix of task names, queue names and Redis keys.
    namespace: str = DEFAULT_NAMESPACE
    queues: QueueSettings = dataclasses.field(default_factory=QueueSettings)
    #: Timezone of schedules; everything inside runs in UTC.
    timezone: str = DEFAULT_TIMEZONE
    #: Where the embedded Redis, the outbox and reports live (default: the user data folder).
    data_dir: Path | None = None
    #: Seconds before Redis redelivers an unacknowledged message.
    visibility_timeout: float = DEFAULT_VISIBILITY_TIMEOUT
    #: Seconds results are kept.
    result_expires: float = DEFAULT_RESULT_EXPIRES
    #: Seconds an idempotency key (and the result it recorded) is kept.
    idempotency_ttl: float = DEFAULT_IDEMPOTENCY_TTL
    #: Send Celery task events (costs Redis writes per task; Flower can switch them on live).
    task_events: bool = False
    #: Refuse to start a worker on a Redis that would lose messages (no persistence, eviction).
    strict_redis: bool = False
    #: The most bytes a worker takes a message body to be (a compressed one, once inflated):
    #: a larger message is refused and recorded with the poison records, never inflated whole.
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    tls: TlsSettings = dataclasses.field(default_factory=TlsSettings)
    bots: BotSettings = dataclasses.field(default_factory=BotSettings)
    mail: MailSettings = dataclasses.field(default_factory=MailSettings)
    maintenance: MaintenanceSettings = dataclasses.field(default_factory=MaintenanceSettings)
    monitoring: MonitoringSettings = dataclasses.field(default_factory=MonitoringSettings)
    schedules: SchedulesSettings = dataclasses.field(default_factory=SchedulesSettings)
    #: Any other Celery setting, passed through (unknown names are refused).
    celery: Mapping[str, Any] = dataclasses.field(default_factory=_frozen_mapping)

    def __post_init__(self) -> None:
        object.__setattr__(self, "celery", MappingProxyType(dict(self.celery)))
        check_values(self)

    # -- constructors -------------------------------------------------------------------------

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any] | object) -> Settings:
        """Build settings from a (nested) mapping, refusing unknown keys and wrong types.

        Raises:
            SettingsError: a key is unknown, a value has the wrong type or an invalid value.
        """
        if not is_mapping(mapping):
            msg = f"settings must be a mapping, got {type(mapping).__name__}"
            raise SettingsError(msg)
        _check_keys(cls, mapping, ())
        return _convert(mapping, strict=True, describe=lambda path: f"setting {path!r}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from ``CRAWJUD_TASKS_*`` environment variables (see the module rule).

        Raises:
            SettingsError: a variable names no setting, or its value does not fit the setting.
        """
        env = os.environ if environ is None else environ
        nested: dict[str, Any] = {}
        names: dict[str, str] = {}
        for name, raw in env.items():
            if not name.upper().startswith(ENV_PREFIX) or name.upper() in PROCESS_SWITCHES:
                continue
            path = tuple(part.lower() for part in name[len(ENV_PREFIX) :].split("__"))
            _check_env_name(name, path)
            names[".".join(path)] = name
            value = _env_value(path, raw)
            if value is None:
                continue
            target = nested
            for part in path[:-1]:
                target = target.setdefault(part, {})
            target[path[-1]] = value

        def describe(path: str) -> str:
            return f"{names.get(path, ENV_PREFIX + path.upper())} (setting {path!r})"

        return _convert(nested, strict=False, describe=describe)

    # -- derived values -----------------------------------------------------------------------

    @property
    def queue_names(self) -> Mapping[str, str]:
        """The queue of each domain, and ``default``, with namespace-derived defaults filled in."""
        names = {"default": self.queues.default or self.namespace}
        for domain in DOMAINS:
            names[domain] = getattr(self.queues, domain) or f"{self.namespace}.{domain}"
        return names

    @property
    def key_prefix(self) -> str:
        """The prefix of every Redis key the library writes (``<namespace>:``)."""
        return f"{self.namespace}:"

    @property
    def attachment_roots(self) -> tuple[Path, ...]:
        """Where mail attachments may come from: ``mail.attachment_roots``, or by default where
        bots read their inputs and write their reports."""
        if self.mail.attachment_roots is not None:
            return self.mail.attachment_roots
        reports = self.bots.reports_dir or self.resolved_data_dir / "reports"
        return (*self.bots.allowed_roots, reports.expanduser())

    @property
    def resolved_data_dir(self) -> Path:
        """``data_dir``, or the platform's user data folder for ``crawjud-tasks``."""
        if self.data_dir is not None:
            return self.data_dir.expanduser()
        import platformdirs  # noqa: PLC0415  (only needed when no data_dir is set)

        return Path(platformdirs.user_data_dir("crawjud-tasks", appauthor=False))

    # -- printing -----------------------------------------------------------------------------

    def to_dict(self, *, redact: bool = True) -> dict[str, Any]:
        """The settings as plain data; secrets (passwords, URL passwords) redacted by default."""
        data: dict[str, Any] = msgspec.to_builtins(self, enc_hook=_enc_hook)
        data["celery"] = dict(self.celery)
        if not redact:
            data["mail"]["password"] = self.mail.password and self.mail.password.reveal()
            return data
        for key in ("broker_url", "result_backend"):
            if data[key]:
                data[key] = redact_url(data[key])
        data["celery"] = redact_mapping(data["celery"])
        return data

    def to_env(self) -> dict[str, str]:
        """The environment variables that rebuild these settings with :meth:`from_env`.

        Only settings that differ from their defaults are included. The values carry secrets in
        the clear (a worker subprocess needs them): never log what this returns.
        """
        env: dict[str, str] = {}
        default = Settings().to_dict(redact=False)
        current = self.to_dict(redact=False)
        for section, value in current.items():
            if is_dict(value) and section != "celery":
                for key, item in value.items():
                    if item != default[section][key]:
                        name = f"{ENV_PREFIX}{section.upper()}__{str(key).upper()}"
                        env[name] = _env_text(item)
            elif section == "celery":
                for key, item in self.celery.items():
                    env[f"{ENV_PREFIX}CELERY__{key.upper()}"] = json.dumps(item)
            elif value != default[section]:
                env[f"{ENV_PREFIX}{section.upper()}"] = _env_text(value)
        return env

    def __repr__(self) -> str:
        shown = _non_defaults(self.to_dict(), Settings().to_dict())
        inner = ", ".join(f"{key}={value!r}" for key, value in shown.items())
        return f"Settings({inner})"


def load_settings(config: Settings | Mapping[str, Any] | object) -> Settings:
    """Settings from a ``Settings`` (as is), a mapping (validated) or ``None`` (environment)."""
    if isinstance(config, Settings):
        return config
    if config is None:
        return Settings.from_env()
    if is_mapping(config):
        return Settings.from_mapping(config)
    msg = f"config must be a crawjud_tasks.Settings, a mapping or None, got {type(config).__name__}"
    raise SettingsError(msg)


# -- validation -------------------------------------------------------------------------------


def _section_types() -> dict[str, type[Any]]:
    hints = get_type_hints(Settings)
    return {
        name: tp
        for name, tp in hints.items()
        if isinstance(tp, type) and dataclasses.is_dataclass(tp)
    }


def _field_names(cls: type[Any]) -> list[str]:
    return [field.name for field in dataclasses.fields(cls)]


def _check_keys(cls: type[Any], mapping: Mapping[Any, Any], path: tuple[str, ...]) -> None:
    sections = _section_types() if cls is Settings else {}
    valid = _field_names(cls)
    for key, value in mapping.items():
        if not isinstance(key, str):
            msg = f"setting names must be strings, got {key!r} in {'.'.join(path) or 'settings'}"
            raise SettingsError(msg)
        dotted = ".".join((*path, key))
        if key not in valid:
            hint = suggest(key, valid, render=lambda n: repr(".".join((*path, n))))
            msg = f"unknown setting {dotted!r}; {hint}"
            raise SettingsError(msg)
        if key in sections and is_mapping(value):
            _check_keys(sections[key], value, (*path, key))


def _check_env_name(name: str, path: tuple[str, ...]) -> None:
    sections = _section_types()
    top = _field_names(Settings)
    all_names = [f"{ENV_PREFIX}{f.upper()}" for f in top if f not in sections and f != "celery"]
    for section, cls in sections.items():
        all_names += [f"{ENV_PREFIX}{section.upper()}__{f.upper()}" for f in _field_names(cls)]
    if path[0] == "celery" and len(path) == 2:  # passthrough; its name is checked with the rest
        return
    ok = (
        len(path) == 1 and path[0] in top and path[0] not in sections and path[0] != "celery"
    ) or (len(path) == 2 and path[0] in sections and path[1] in _field_names(sections[path[0]]))
    if not ok:
        hint = suggest(name.upper(), all_names, render=str)
        msg = f"unknown environment variable {name}; {hint}"
        raise SettingsError(msg)


def _env_value(path: tuple[str, ...], raw: str) -> Any:
    if path[0] == "celery":
        try:
            return json.loads(raw)
        except ValueError:
            return raw
    if raw.strip() == "":
        return None
    cls: type[Any] = Settings if len(path) == 1 else _section_types()[path[0]]
    tp = get_type_hints(cls)[path[-1]]
    given = [arg for arg in get_args(tp) if arg is not type(None)]  # X | None: X
    if get_origin(tp) is tuple or (len(given) == 1 and get_origin(given[0]) is tuple):
        text = raw.strip()
        if text.startswith("["):
            try:
                return json.loads(text)
            except ValueError:
                pass  # not JSON: let the comma rule take it
        return [item.strip() for item in text.split(",") if item.strip()]
    return raw


def _dec_hook(tp: type[Any], obj: Any) -> Any:
    if tp is Path:
        if isinstance(obj, str):
            return Path(obj)
        msg = f"Expected `path`, got `{type(obj).__name__}`"
        raise TypeError(msg)
    if tp is Secret:
        if isinstance(obj, Secret):
            return obj
        if isinstance(obj, str):
            return Secret(obj)
        msg = f"Expected `str`, got `{type(obj).__name__}`"
        raise TypeError(msg)
    raise NotImplementedError


def _enc_hook(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, Secret):
        return REDACTED
    if is_mapping_proxy(obj):
        return dict(obj)
    raise NotImplementedError


_MSGSPEC_ERROR = re.compile(r"^(?P<what>.*?)(?: - at `\$(?P<path>[^`]*)`)?$")
_TYPE_WORDS = {"null": "None", "array": "list", "object": "mapping", "str": "str"}


def _lookup(data: Any, path: str) -> Any:
    for part in filter(None, re.split(r"[.\[\]]", path)):
        if is_mapping(data):
            data = data.get(part)
        elif is_list(data) and part.isdigit():
            data = data[int(part)]
        else:
            return None
    return data


def _convert(data: Mapping[str, Any], *, strict: bool, describe: Callable[[str], str]) -> Settings:
    try:
        return msgspec.convert(data, Settings, strict=strict, dec_hook=_dec_hook)
    except msgspec.ValidationError as exc:
        if isinstance(exc.__context__, SettingsError):  # raised by a value check: name its source
            text = str(exc.__context__)
            named = re.search(r"'([a-z_]+(?:\.[a-z_]+)*)'", text)
            source = describe(named[1]) if named else "settings"
            if not source.startswith("setting "):  # an environment variable: say which one
                text = f"{source.split(' (', 1)[0]}: {text}"
            raise SettingsError(text) from exc.__context__
        match = _MSGSPEC_ERROR.match(str(exc))
        what, path = (match["what"], (match["path"] or "").lstrip(".")) if match else (str(exc), "")
        typed = re.match(r"Expected `(?P<exp>[^`]*)`, got `(?P<got>[^`]*)`", what)
        where = describe(path) if path else "settings"
        if typed:
            expected = " | ".join(_TYPE_WORDS.get(t, t) for t in typed["exp"].split(" | "))
            got = _TYPE_WORDS.get(typed["got"], typed["got"])
            shown = redact_mapping({path.rsplit(".", 1)[-1]: _lookup(data, path)})
            value = next(iter(shown.values()))
            msg = f"{where} expects {expected}, got {got} {value!r}"
        elif what.startswith("Invalid enum value"):
            choices = ", ".join(repr(c) for c in get_args(_hint_at(path)))
            msg = f"{where} must be one of {choices}, got {_lookup(data, path)!r}"
        else:
            msg = f"{where}: {what[:1].lower()}{what[1:]}"
        raise SettingsError(msg) from exc
    except SettingsError:
        raise
    except (TypeError, ValueError) as exc:
        raise SettingsError(f"settings: {exc}") from exc


def _hint_at(path: str) -> Any:
    cls: Any = Settings
    tp: Any = None
    for part in path.split("."):
        tp = get_type_hints(cls).get(part)
        cls = tp
    return tp


# -- printing helpers -------------------------------------------------------------------------


def _non_defaults(data: dict[str, Any], default: dict[str, Any]) -> dict[str, Any]:
    shown: dict[str, Any] = {}
    for key, value in data.items():
        if is_dict(value) and isinstance(default.get(key), dict):
            inner = _non_defaults(value, default[key])
            if inner:
                shown[key] = inner
        elif value != default.get(key):
            shown[key] = value
    return shown


def _env_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if is_list_or_tuple(value):
        return json.dumps(list(value))
    return str(value)
