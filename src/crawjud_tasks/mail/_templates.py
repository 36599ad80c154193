"""Mail templates: Jinja2, sandboxed, strict, escaped, with host folders first.

A template ``<name>`` in a locale is two files in ``<locale>/``: ``<name>.html`` (the HTML part;
it extends ``<locale>/_layout.html`` and defines ``{% block subject %}``) and ``<name>.txt`` (the
text part). A host folder in ``MailSettings.template_dirs`` with the same layout takes precedence,
file by file; a host ``.html`` without its ``.txt`` gets a text part derived from the HTML.

Context values are data, never templates: they are escaped in the HTML part and printed as they
are in the text part and the subject. A variable the context lacks is an error, not an empty
string.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import json
import math
import re
import zoneinfo
from collections.abc import Mapping
from html.parser import HTMLParser
from importlib import resources
from pathlib import Path
from typing import Any

from jinja2 import (
    BaseLoader,
    ChoiceLoader,
    FileSystemLoader,
    PackageLoader,
    StrictUndefined,
    Template,
    TemplateError,
    TemplateNotFound,
    TemplateSyntaxError,
    UndefinedError,
    select_autoescape,
)
from jinja2.sandbox import SandboxedEnvironment

from crawjud_tasks._settings import MailSettings
from crawjud_tasks.errors import InvalidEmailError
from crawjud_tasks.mail._bounded import BoundedEnvironment, RenderLimitError, render_bounded

__all__ = [
    "RenderedEmail",
    "check_template",
    "example_context",
    "format_datetime",
    "format_duration",
    "html_to_text",
    "known_templates",
    "render",
]

#: A template name: letters, digits, ``_`` and ``-``; never a path, never a ``_private`` one.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
_LOCALE = re.compile(r"[A-Za-z]{2,3}(?:_[A-Za-z0-9]{2,8})?")
_UNDEFINED = re.compile(r"^'([^']+)' is undefined$")
_SPACES = re.compile(r"\s+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]+")


@dataclasses.dataclass(frozen=True, slots=True)
class RenderedEmail:
    """A rendered template: a one-line subject, the HTML part and the text part."""

    subject: str
    html: str
    text: str


@dataclasses.dataclass(frozen=True, slots=True)
class _Environments:
    """The two environments over one loader: HTML autoescaped, text not."""

    html: SandboxedEnvironment
    text: SandboxedEnvironment


def _loader(template_dirs: tuple[Path, ...]) -> BaseLoader:
    loaders: list[BaseLoader] = [FileSystemLoader([str(d) for d in template_dirs])]
    loaders.append(PackageLoader("crawjud_tasks.mail", "templates"))
    return ChoiceLoader(loaders)


@functools.lru_cache(maxsize=32)
def _environments(template_dirs: tuple[Path, ...], timezone: str = "UTC") -> _Environments:
    """One pair of environments per tuple of host folders and timezone (templates compile once
    each), with the filters ``datetime`` and ``duration`` (see :func:`format_datetime`).

    ``auto_reload`` is off: a changed template is read again by a new process, not on every
    render (which would cost a ``stat`` per file and render).
    """
    loader = _loader(template_dirs)
    common: dict[str, Any] = {
        "loader": loader,
        "undefined": StrictUndefined,
        "auto_reload": False,
        "keep_trailing_newline": False,
        "trim_blocks": True,
        "lstrip_blocks": True,
    }
    html = BoundedEnvironment(autoescape=select_autoescape(("html", "htm")), **common)
    text = BoundedEnvironment(autoescape=False, **common)
    zone = zoneinfo.ZoneInfo(timezone)
    for env in (html, text):
        env.filters["datetime"] = functools.partial(format_datetime, zone=zone)
        env.filters["duration"] = format_duration
    return _Environments(html=html, text=text)


def format_datetime(value: object, fmt: str = "%Y-%m-%d %H:%M", *, zone: dt.tzinfo) -> str:
    """The filter ``datetime``: a datetime (or ISO 8601 text) in ``zone``, as ``fmt``
    (``strftime``); other text is shown as it is (a host may format its own). A naive datetime
    is taken as UTC."""
    moment = value
    if isinstance(value, str):
        try:
            moment = dt.datetime.fromisoformat(value)
        except ValueError:
            return value
    if not isinstance(moment, dt.datetime):
        return str(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return moment.astimezone(zone).strftime(fmt)


def format_duration(value: object) -> str:
    """The filter ``duration``: seconds as ``1 h 12 min``, ``3 min 5 s`` or ``42 s``; text is
    shown as it is."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return str(value)
    hours, rest = divmod(max(0, round(value)), 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {secs} s"
    return f"{secs} s"


def known_templates(settings: MailSettings, locale: str) -> list[str]:
    """The template names available in ``locale`` (host folders and the package), sorted."""
    return _names(_environments(settings.template_dirs), locale)


def _names(envs: _Environments, locale: str) -> list[str]:
    prefix = f"{locale}/"
    found: set[str] = set()
    for path in envs.html.list_templates(extensions=["html"]):
        if path.startswith(prefix):
            stem = path[len(prefix) : -len(".html")]
            if "/" not in stem and not stem.startswith("_"):
                found.add(stem)
    return sorted(found)


@functools.lru_cache(maxsize=32)
def _locales(template_dirs: tuple[Path, ...]) -> tuple[str, ...]:
    """The locales with at least one template (listed once: templates are not reloaded)."""
    envs = _environments(template_dirs)
    found = {
        path.split("/", 1)[0]
        for path in envs.html.list_templates(extensions=["html"])
        if path.count("/") == 1
    }
    return tuple(sorted(found))


def render(
    settings: MailSettings,
    name: str,
    context: Mapping[str, Any],
    locale: str,
    *,
    timezone: str = "UTC",
) -> RenderedEmail:
    """Render the template ``name`` in ``locale`` with ``context``.

    Args:
        settings: The mail settings; their ``template_dirs`` come before the package's templates.
        name: The template name, such as ``bot_finished``.
        context: The template's variables (see the docs for each template's list).
        locale: ``pt_BR`` or ``en`` (or a locale a host folder adds).
        timezone: The zone the filter ``datetime`` shows times in (the app's ``timezone``).

    Returns:
        The subject (one line, no CR/LF), the HTML part and the text part.

    Raises:
        InvalidEmailError: the template or the locale is unknown, the context lacks a variable,
            or a host template is broken.
    """
    envs = _environments(settings.template_dirs, timezone)
    html_template = _find(envs, settings.template_dirs, name, locale)
    text_template = _get(envs, envs.text, name, locale, "txt")
    if text_template is not None and not _siblings(html_template, text_template):
        text_template = None  # a host .html without its .txt: derive the text from the HTML
    subject_template = _get(envs, envs.text, name, locale, "html")
    assert subject_template is not None  # the same file as html_template, found just above
    values = dict(context)
    where = f"{name!r} ({locale})"
    limits: dict[str, Any] = {
        "max_bytes": settings.max_render_size,
        "seconds": settings.render_timeout,
    }
    try:
        html = render_bounded(html_template.generate(values), owner=envs.html, **limits)
        if text_template is None:
            text = html_to_text(html)
        else:
            text = render_bounded(text_template.generate(values), owner=envs.text, **limits)
        subject = _subject(subject_template, values, where)
    except RenderLimitError as exc:
        msg = f"mail template {where} was stopped: {exc}"
        raise InvalidEmailError(msg) from exc
    except UndefinedError as exc:
        raise InvalidEmailError(_missing(exc, where)) from exc
    except (TemplateError, ArithmeticError, LookupError, TypeError, ValueError) as exc:
        # A host template's own mistake (a range past the sandbox's bound, a division by zero).
        msg = f"mail template {where} failed to render: {type(exc).__name__}: {exc}"
        raise InvalidEmailError(msg) from exc
    return RenderedEmail(subject=subject, html=html, text=_tidy(text))


def _siblings(html: Template, text: Template) -> bool:
    """Whether both parts come from the same folder (a host's, or the package's)."""
    if html.filename is None or text.filename is None:
        return html.filename == text.filename
    return text.filename.removesuffix(".txt") == html.filename.removesuffix(".html")


def check_template(settings: MailSettings, name: str, locale: str) -> None:
    """Check that ``locale`` is known and has the template ``name``, before any context exists.

    Raises:
        InvalidEmailError: the locale or the template is unknown (the message lists the known
            ones), or the template is not valid Jinja2.
    """
    _find(_environments(settings.template_dirs), settings.template_dirs, name, locale)


def _find(envs: _Environments, template_dirs: tuple[Path, ...], name: str, locale: str) -> Template:
    locales = _locales(template_dirs)
    if not _LOCALE.fullmatch(locale) or locale not in locales:
        msg = f"unknown mail locale {locale!r}; known locales: {', '.join(locales)}"
        raise InvalidEmailError(msg)
    template = _get(envs, envs.html, name, locale, "html")
    if template is None:
        known = ", ".join(_names(envs, locale))
        msg = f"unknown mail template {name!r} in {locale}; known templates: {known}"
        raise InvalidEmailError(msg)
    return template


def _get(
    envs: _Environments, env: SandboxedEnvironment, name: str, locale: str, ext: str
) -> Template | None:
    if not _NAME.fullmatch(name):
        return None
    path = f"{locale}/{name}.{ext}"
    try:
        return env.get_template(path)
    except TemplateNotFound:
        return None
    except TemplateSyntaxError as exc:
        where = exc.filename or path
        msg = f"mail template {where} line {exc.lineno} is not valid Jinja2: {exc.message}"
        raise InvalidEmailError(msg) from exc


def _subject(template: Template, values: dict[str, Any], where: str) -> str:
    block = template.blocks.get("subject")
    if block is None:
        msg = f"mail template {where} defines no {{% block subject %}}; add one to its .html"
        raise InvalidEmailError(msg)
    raw = "".join(block(template.new_context(values)))
    # One header line: every control character and line separator becomes a space.
    subject = " ".join(_CONTROL.sub(" ", raw).split())
    if not subject:
        msg = f"mail template {where} rendered an empty subject"
        raise InvalidEmailError(msg)
    return subject


def _missing(exc: UndefinedError, where: str) -> str:
    message = exc.message or str(exc)
    match = _UNDEFINED.match(message)
    if match:
        return (
            f"mail template {where} needs the variable {match.group(1)!r}, "
            "which the context does not have; add it to the context"
        )
    return f"mail template {where} needs a value the context does not have: {message}"


def _tidy(text: str) -> str:
    """Trailing spaces off, at most one blank line in a row, one final newline."""
    lines = [line.rstrip() for line in text.strip().splitlines()]
    out: list[str] = []
    for line in lines:
        if line or (out and out[-1]):
            out.append(line)
    return "\n".join(out) + "\n"


_BLOCKS = frozenset(
    {"p", "div", "table", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "section"}
)
_SKIP = frozenset({"head", "style", "script", "title"})


class _TextExtractor(HTMLParser):
    """HTML to plain text: block elements become lines, links become ``text (url)``."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0
        self._links: list[tuple[str | None, int]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            self._skip += 1
        elif tag in _BLOCKS:
            self.parts.append("\n\n" if tag in {"p", "h1", "h2", "h3", "table"} else "\n")
        elif tag == "br":
            self.parts.append("\n")
        elif tag == "li":
            self.parts.append("\n- ")
        elif tag in {"td", "th"}:
            self.parts.append(" ")
        elif tag == "a":
            self._links.append((dict(attrs).get("href"), len(self.parts)))

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP:
            self._skip = max(0, self._skip - 1)
        elif tag in _BLOCKS:
            self.parts.append("\n")
        elif tag == "a" and self._links:
            href, start = self._links.pop()
            label = " ".join("".join(self.parts[start:]).split())
            if href and href != label and not href.startswith("#"):
                self.parts.append(f" ({href})" if label else href)

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(_SPACES.sub(" ", data))


def html_to_text(html: str) -> str:
    """A text part for an HTML part: tags stripped, links kept as ``text (url)``, whitespace
    collapsed (one space within a line, at most one blank line between paragraphs)."""
    parser = _TextExtractor()
    parser.feed(html)
    parser.close()
    lines = [" ".join(line.split()) for line in "".join(parser.parts).splitlines()]
    return _tidy("\n".join(lines))


@functools.cache
def _examples() -> dict[str, dict[str, Any]]:
    raw = resources.files("crawjud_tasks.mail").joinpath("examples.json").read_text("utf-8")
    loaded: dict[str, dict[str, Any]] = json.loads(raw)
    return loaded


def example_context(name: str) -> dict[str, Any] | None:
    """The documented example context of a shipped template (a fresh copy), or ``None``."""
    examples = _examples()
    if name not in examples:
        return None
    copied: dict[str, Any] = json.loads(json.dumps(examples[name]))
    return copied
