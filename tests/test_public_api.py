"""The domains' public modules: every listed name resolves, and the mail package stays cheap."""

from __future__ import annotations

import subprocess
import sys
from types import ModuleType

import pytest

import crawjud_tasks.bots
import crawjud_tasks.mail


@pytest.mark.parametrize("module", [crawjud_tasks.bots, crawjud_tasks.mail])
def test_every_listed_name_resolves_and_the_list_is_sorted(module: ModuleType) -> None:
    assert module.__all__ == sorted(module.__all__)
    missing = [name for name in module.__all__ if getattr(module, name, None) is None]
    assert missing == []


def test_an_unknown_mail_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="has no attribute 'sendmail'"):
        _ = crawjud_tasks.mail.sendmail


@pytest.mark.slow
def test_a_host_importing_the_mail_contracts_loads_neither_jinja2_nor_smtp() -> None:
    probe = (
        "import sys, crawjud_tasks.mail.contracts, crawjud_tasks.bots.contracts; "
        "print(sorted(m for m in ('jinja2', 'smtplib') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[]"
