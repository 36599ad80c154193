"""The domains' public modules: every listed name resolves, and the mail package stays cheap."""

from __future__ import annotations

import subprocess
import sys
from types import ModuleType

import pytest

import crawjud_tasks
import crawjud_tasks.bots
import crawjud_tasks.mail
import crawjud_tasks.monitoring


@pytest.mark.parametrize(
    "module", [crawjud_tasks, crawjud_tasks.bots, crawjud_tasks.mail, crawjud_tasks.monitoring]
)
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


@pytest.mark.slow
@pytest.mark.parametrize("where", ["--dir", "settings"])
def test_the_worker_probe_imports_neither_celery_nor_redis(tmp_path: object, where: str) -> None:
    folder = ["'--dir'", repr(str(tmp_path))] if where == "--dir" else []
    probe = (
        "import os, sys\n"
        f"os.environ['CRAWJUD_TASKS_MONITORING__HEALTH_DIR'] = {str(tmp_path)!r}\n"
        f"sys.argv = ['crawjud-tasks', 'health', 'worker', '--ready', {', '.join(folder)}]\n"
        "from crawjud_tasks._cli import main\n"
        "try:\n    main()\nexcept SystemExit as exc:\n    code = exc.code\n"
        "print(code, sorted(m for m in ('celery', 'kombu', 'redis') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "1 []", done.stderr  # no record there: not healthy
