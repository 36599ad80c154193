"""docs/troubleshooting.md has a section for every error class the library exports."""

from __future__ import annotations

import re

import crawjud_tasks.errors
from tests.docs_blocks import ROOT

_PAGE = ROOT / "docs" / "troubleshooting.md"


def test_every_error_class_has_a_section_that_says_what_to_do() -> None:
    text = _PAGE.read_text()
    sections = dict(re.findall(r"^### (\w+)\n\n(.*?)(?=^#|\Z)", text, flags=re.M | re.S))
    missing = sorted(set(crawjud_tasks.errors.__all__) - set(sections))
    assert not missing, f"add a section '### Name' to {_PAGE.name} for: {', '.join(missing)}"
    unknown = sorted(set(sections) - set(crawjud_tasks.errors.__all__))
    assert not unknown, f"sections for no error class: {', '.join(unknown)}"
    for name, body in sections.items():
        assert "**Do:**" in body, f"the section of {name} does not say what to do"
