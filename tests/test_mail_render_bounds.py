"""A host template cannot exhaust a worker: a render's output size, its string and list
repetitions and its loops are bounded, and it ends within its time (issue 13, item 13)."""

from __future__ import annotations

import resource
from pathlib import Path
from typing import Any

import pytest

from crawjud_tasks import MailSettings, app_settings
from crawjud_tasks.errors import InvalidEmailError
from crawjud_tasks.mail import render

LAYOUT = "{% block subject %}s{% endblock %}"


def host(tmp_path: Path, body: str) -> MailSettings:
    folder = tmp_path / "templates" / "en"
    folder.mkdir(parents=True)
    (folder / "hostile.html").write_text(LAYOUT + body)
    (folder / "hostile.txt").write_text("text")
    return MailSettings(template_dirs=(tmp_path / "templates",), render_timeout=1.0)


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("{{ 'x' * 200000000 }}", "repeats"),
        ("{{ ['x'] * 200000000 }}", "repeats"),
        ("{{ 10 ** 10000000 }}", "power"),
        (
            "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
            "loop",
        ),
        ("{% for i in range(3000000) %}{{ i }}{% endfor %}", "range"),
        (
            "{% for a in 'x' * 1000 %}{% for b in 'x' * 1000 %}{% for c in 'x' * 1000 %}"
            "{% endfor %}{% endfor %}{% endfor %}",
            "loop",
        ),
        ("{{ 'x'|center(300000000) }}", "width"),
        ("{{ 'x'|indent(300000000, true) }}", "width"),
        ("{% for i in range(9000) %}{{ '%s'|format('y' * 900) }}{% endfor %}", "output"),
    ],
    ids=[
        "string",
        "list",
        "power",
        "nested-ranges",
        "long-range",
        "nested-string-loops",
        "center",
        "indent",
        "output",
    ],
)
def test_a_hostile_template_is_refused_without_exhausting_the_process(
    tmp_path: Path, body: str, reason: str
) -> None:
    before = peak_rss_mib()
    with pytest.raises(InvalidEmailError, match="mail template 'hostile'") as info:
        render(host(tmp_path, body), "hostile", {}, "en")
    assert "\n" not in str(info.value)
    assert peak_rss_mib() - before < 100, f"{reason}: the render grew the process"


def test_an_ordinary_host_template_still_renders(tmp_path: Path) -> None:
    body = (
        "{% for i in range(50) %}<p>{{ i }} {{ 'ab' * 3 }} {{ 2 ** 10 }} {{ '%05d'|format(i) }}"
        " {{ '%d'|format(123456) }}</p>{% endfor %}"
    )
    rendered = render(host(tmp_path, body), "hostile", {}, "en")
    assert "<p>49 ababab 1024 00049 123456</p>" in rendered.html


def test_mail_tasks_run_under_a_time_limit(crawjud_app: Any) -> None:
    limit = app_settings(crawjud_app).mail.task_time_limit
    for name in ("crawjud.mail.send_email", "crawjud.mail.send_bulk"):
        task = crawjud_app.tasks[name]
        assert task.time_limit == limit
        assert task.soft_time_limit == pytest.approx(limit * 0.9)
