"""The configuration reference documents every setting and its environment variable."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from crawjud_tasks import Settings

REFERENCE = Path(__file__).parent.parent / "docs" / "configuration.md"


def _setting_paths() -> list[tuple[str, str]]:
    paths: list[tuple[str, str]] = []
    for field in dataclasses.fields(Settings):
        default = getattr(Settings(), field.name)
        if dataclasses.is_dataclass(default):
            for inner in dataclasses.fields(default):
                env = f"CRAWJUD_TASKS_{field.name.upper()}__{inner.name.upper()}"
                paths.append((f"{field.name}.{inner.name}", env))
        elif field.name == "celery":
            paths.append(("celery", "CRAWJUD_TASKS_CELERY__<NAME>"))
        else:
            paths.append((field.name, f"CRAWJUD_TASKS_{field.name.upper()}"))
    return paths


def test_every_setting_has_a_row_with_its_variable() -> None:
    text = REFERENCE.read_text()
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    missing = [
        path
        for path, env in _setting_paths()
        if not any(line.startswith(f"| `{path}` |") and f"`{env}`" in line for line in rows)
    ]
    assert missing == []


def test_every_documented_variable_is_a_known_one() -> None:
    for _, env in _setting_paths():
        if "<" in env:
            continue
        error = ""
        try:
            Settings.from_env({env: "not-a-valid-value-for-most-settings"})
        except ValueError as exc:
            error = str(exc)
        assert "unknown environment variable" not in error


def test_the_retry_examples_print_what_the_page_says() -> None:
    import doctest
    import re

    import crawjud_tasks

    page = (Path(__file__).parent.parent / "docs" / "retries.md").read_text()
    blocks = re.findall(r"^```pycon\n(.*?)^```", page, flags=re.MULTILINE | re.DOTALL)
    globs = {name: getattr(crawjud_tasks, name) for name in ("RetryPolicy", "TransientError")}
    test = doctest.DocTestParser().get_doctest("\n".join(blocks), globs, "retries.md", None, 0)
    runner = doctest.DocTestRunner()
    runner.run(test)
    assert len(test.examples) >= 5
    assert runner.failures == 0
