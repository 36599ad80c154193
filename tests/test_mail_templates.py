"""Mail templates: the shipped ones in both locales, escaping, strictness, host folders, preview."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from crawjud_tasks._settings import MailSettings
from crawjud_tasks.errors import InvalidEmailError
from crawjud_tasks.mail._templates import (
    RenderedEmail,
    check_template,
    example_context,
    html_to_text,
    known_templates,
    render,
)
from tests.helpers import python_env, run_cli

SHIPPED = ["alert", "bot_cancelled", "bot_failed", "bot_finished", "bot_started", "periodic_report"]
LOCALES = ["pt_BR", "en"]
HOSTILE = ["<script>alert(1)</script>", "{{7*7}}", "{% raw %}"]
PACKAGE_TEMPLATES = Path(__file__).parent.parent / "src" / "crawjud_tasks" / "mail" / "templates"


def _example(name: str) -> dict[str, object]:
    context = example_context(name)
    assert context is not None
    return context


def test_the_shipped_templates_are_the_documented_ones() -> None:
    for locale in LOCALES:
        assert known_templates(MailSettings(), locale) == SHIPPED


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("name", SHIPPED)
def test_every_template_renders_its_example(name: str, locale: str) -> None:
    rendered = render(MailSettings(), name, _example(name), locale)
    assert isinstance(rendered, RenderedEmail)
    assert rendered.subject and "\n" not in rendered.subject and "\r" not in rendered.subject
    assert rendered.html.startswith("<!DOCTYPE html>")
    assert "max-width:600px" in rendered.html and ">CrawJUD</td>" in rendered.html
    assert "{{" not in rendered.html and "{%" not in rendered.html
    assert "{{" not in rendered.text and "<" not in rendered.text
    assert rendered.text.endswith("\n") and not rendered.text.startswith("\n")


@pytest.mark.parametrize("name", SHIPPED)
def test_the_example_uses_every_documented_variable_and_only_those(name: str) -> None:
    header = (PACKAGE_TEMPLATES / "pt_BR" / f"{name}.html").read_text().split("#}")[0]
    documented = {
        line.split()[0] for line in header.split("Variables:")[1].splitlines() if line.strip()
    }
    assert set(_example(name)) == documented
    optional = {line.split()[0] for line in header.splitlines() if "optional" in line.split("#")[0]}
    for variable in documented - optional:
        context = _example(name)
        del context[variable]
        with pytest.raises(InvalidEmailError, match=f"'{variable}'"):
            render(MailSettings(), name, context, "pt_BR")
    for variable in optional:
        context = _example(name)
        url = context.pop(variable)
        rendered = render(MailSettings(), name, context, "pt_BR")
        assert url not in rendered.html and url not in rendered.text


def test_portuguese_reads_as_portuguese() -> None:
    finished = render(MailSettings(), "bot_finished", _example("bot_finished"), "pt_BR")
    assert finished.subject == "Robô PROJUDI - Capa: execução A1B2C3D4 concluída"
    assert "Execução concluída" in finished.html and "Itens processados: 250" in finished.text
    assert 'lang="pt-BR"' in finished.html


def test_bot_finished_says_the_report_is_attached_without_a_link() -> None:
    context = _example("bot_finished")
    del context["report_url"]
    rendered = render(MailSettings(), "bot_finished", context, "en")
    assert "attached to this email" in rendered.text and "attached" in rendered.html
    with_link = render(MailSettings(), "bot_finished", _example("bot_finished"), "en")
    assert "Download the report: https://crawjud.example.org/" in with_link.text


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("name", SHIPPED)
def test_hostile_values_are_data(name: str, locale: str) -> None:
    context = _example(name)
    for key, value in context.items():
        if isinstance(value, str):
            context[key] = " ".join(HOSTILE)
        elif isinstance(value, list):
            context[key] = (
                [{"label": h, "value": h} for h in HOSTILE]
                if name == "periodic_report"
                else list(HOSTILE)
            )
    rendered = render(MailSettings(), name, context, locale)
    assert "<script>" not in rendered.html and "&lt;script&gt;" in rendered.html
    assert "49" not in rendered.html.replace("#", "")
    assert "49" not in rendered.text and "49" not in rendered.subject
    assert "{{7*7}}" in rendered.text and "{% raw %}" in rendered.text
    assert "{{7*7}}" in rendered.html and "{% raw %}" in rendered.html
    if name != "periodic_report":  # its subject holds the period only
        assert "<script>alert(1)</script>" in rendered.text


def test_a_missing_variable_names_itself_and_the_template() -> None:
    context = _example("bot_failed")
    del context["error_summary"]
    with pytest.raises(InvalidEmailError) as caught:
        render(MailSettings(), "bot_failed", context, "en")
    message = str(caught.value)
    assert "'error_summary'" in message and "'bot_failed' (en)" in message
    assert "\n" not in message


def test_unknown_template_and_locale_list_the_known_ones() -> None:
    with pytest.raises(InvalidEmailError, match="known templates: alert, bot_cancelled"):
        render(MailSettings(), "bot_exploded", {}, "pt_BR")
    with pytest.raises(InvalidEmailError, match="known locales: en, pt_BR"):
        render(MailSettings(), "bot_finished", _example("bot_finished"), "fr")
    for name in ("../pt_BR/bot_finished", "_layout", "pt_BR/bot_finished", ""):
        with pytest.raises(InvalidEmailError, match="unknown mail template"):
            check_template(MailSettings(), name, "pt_BR")
    with pytest.raises(InvalidEmailError, match="unknown mail locale"):
        check_template(MailSettings(), "bot_finished", "../templates")


def test_the_subject_is_one_line() -> None:
    context = _example("bot_finished")
    context["bot_name"] = "PROJUDI\r\nBcc: victim@example.org\x00\u2028x"
    rendered = render(MailSettings(), "bot_finished", context, "pt_BR")
    assert rendered.subject == "Robô PROJUDI Bcc: victim@example.org x: execução A1B2C3D4 concluída"
    assert not any(c in rendered.subject for c in "\r\n\x00\u2028")


def _host_folder(tmp_path: Path) -> Path:
    host = tmp_path / "host"
    (host / "pt_BR").mkdir(parents=True)
    (host / "pt_BR" / "bot_finished.html").write_text(
        '{% extends "pt_BR/_layout.html" %}'
        "{% block subject %}Escritório: {{ bot_name }} terminou{% endblock %}"
        "{% block heading %}Pronto{% endblock %}"
        '{% block content %}<p>Veja <a href="{{ report_url }}">o relatório</a> e '
        '<a href="https://x.example/">https://x.example/</a>.</p><ul><li>{{ total }} itens</li>'
        "</ul>{% endblock %}",
        encoding="utf-8",
    )
    return host


def test_a_host_folder_overrides_one_template(tmp_path: Path) -> None:
    settings = MailSettings(template_dirs=(_host_folder(tmp_path),))
    finished = render(settings, "bot_finished", _example("bot_finished"), "pt_BR")
    assert finished.subject == "Escritório: PROJUDI - Capa terminou"
    assert ">CrawJUD</td>" in finished.html  # the package's layout, extended by the host's
    started = render(settings, "bot_started", _example("bot_started"), "pt_BR")
    assert started.subject == "Robô PROJUDI - Capa: execução A1B2C3D4 iniciada"
    english = render(settings, "bot_finished", _example("bot_finished"), "en")
    assert english.subject == "Bot PROJUDI - Capa: run A1B2C3D4 finished"


def test_a_host_template_without_text_gets_one_with_its_links(tmp_path: Path) -> None:
    settings = MailSettings(template_dirs=(_host_folder(tmp_path),))
    text = render(settings, "bot_finished", _example("bot_finished"), "pt_BR").text
    assert "Veja o relatório (https://crawjud.example.org/execucoes/A1B2C3D4/relatorio) e" in text
    assert "https://x.example/." in text and "(https://x.example/)" not in text
    assert "- 250 itens" in text
    assert "CrawJUD\n" in text and "<" not in text and "  " not in text
    assert "Escritório" not in text  # the <title> is the subject, not body text


def test_html_to_text_collapses_whitespace() -> None:
    html = "<html><head><style>p{}</style></head><body><p>a\n   b</p>\n\n\n<p>c &amp; d</p></body>"
    assert html_to_text(html) == "a b\n\nc & d\n"


def test_a_broken_host_template_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "en").mkdir()
    (tmp_path / "en" / "alert.html").write_text("{% block subject %}{{ oops {% endblock %}")
    with pytest.raises(InvalidEmailError, match="not valid Jinja2"):
        render(MailSettings(template_dirs=(tmp_path,)), "alert", _example("alert"), "en")


def test_host_templates_are_sandboxed(tmp_path: Path) -> None:
    (tmp_path / "en").mkdir()
    (tmp_path / "en" / "alert.html").write_text(
        "{% block subject %}{{ title.__class__.__mro__ }}{% endblock %}"
    )
    with pytest.raises(InvalidEmailError, match="SecurityError"):
        render(MailSettings(template_dirs=(tmp_path,)), "alert", _example("alert"), "en")


@pytest.mark.slow
def test_cli_preview_writes_the_html_and_prints_subject_and_text(tmp_path: Path) -> None:
    context = tmp_path / "context.json"
    context.write_text(json.dumps(_example("bot_finished")), encoding="utf-8")
    out = tmp_path / "preview.html"
    done = run_cli(
        "mail", "preview", "bot_finished", "--context", str(context), "--locale", "en",
        "--out", str(out),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert done.stdout.startswith("Subject: Bot PROJUDI - Capa: run A1B2C3D4 finished\n")
    assert "Items processed: 250" in done.stdout


@pytest.mark.slow
def test_cli_preview_defaults_to_the_example_and_a_file_here(tmp_path: Path) -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "crawjud_tasks", "mail", "preview", "alert"],
        env=python_env(),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "alert.pt_BR.html").exists()
    assert done.stdout.startswith("Subject: [CRÍTICO] Fila crawjud.bots parada há 15 minutos")


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "cannot read it"),
        ("{not json", "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        ("{}", "needs the variable"),
    ],
)
@pytest.mark.slow
def test_cli_preview_errors_are_one_line(
    tmp_path: Path, content: str | None, expected: str
) -> None:
    context = tmp_path / "context.json"
    if content is not None:
        context.write_text(content, encoding="utf-8")
    done = run_cli(
        "mail", "preview", "bot_started", "--context", str(context), "--out",
        str(tmp_path / "out.html"),
    )  # fmt: skip
    assert done.returncode == 1
    assert expected in done.stderr and done.stderr.count("\n") == 1
    assert not (tmp_path / "out.html").exists()


@pytest.mark.slow
def test_cli_preview_unknown_template() -> None:
    done = run_cli("mail", "preview", "nope", "--locale", "fr")
    assert done.returncode == 1
    assert done.stderr.strip() == "Error: unknown mail locale 'fr'; known locales: en, pt_BR"


def test_the_datetime_filter_shows_times_in_the_apps_timezone_in_each_locales_format() -> None:
    context = {**_example("bot_finished"), "finished_at": "2026-11-28T13:27:00+00:00"}
    context["duration"] = 4320.4
    pt = render(MailSettings(), "bot_finished", context, "pt_BR", timezone="America/Sao_Paulo")
    en = render(MailSettings(), "bot_finished", context, "en", timezone="UTC")
    assert "Término: 28/11/2026 10:27" in pt.text and "Duração: 1 h 12 min" in pt.text
    assert "Finished: 2026-11-28 13:27" in en.text and "Duration: 1 h 12 min" in en.text
    assert "28/11/2026 10:27" in pt.html


@pytest.mark.parametrize(
    ("seconds", "shown"), [(0, "0 s"), (42.4, "42 s"), (185, "3 min 5 s"), (7260, "2 h 1 min")]
)
def test_the_duration_filter_says_hours_minutes_and_seconds(seconds: float, shown: str) -> None:
    context = {**_example("bot_finished"), "duration": seconds}
    assert f"Duration: {shown}" in render(MailSettings(), "bot_finished", context, "en").text


def test_text_a_host_formatted_itself_is_shown_as_it_is() -> None:
    context = {**_example("bot_started"), "started_at": "amanhã cedo"}
    assert "Início: amanhã cedo" in render(MailSettings(), "bot_started", context, "pt_BR").text
