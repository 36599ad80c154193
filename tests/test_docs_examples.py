"""Every example of the docs and the README runs: Python blocks are executed (``pycon`` blocks
checked as doctests, ``def test_`` blocks run by pytest with the plugin), and the console
commands that are safe to run are run.

Pages are found, not listed: ``README.md`` and every ``docs/*.md``, so a new page is covered from
its first commit. How a page's blocks run:

- A block whose first line is a path comment (``# myservice/contracts.py``) is written to that
  file of a project folder, which is on ``PYTHONPATH`` for the page's other blocks and worker.
- The other ``python`` blocks run in order, in one namespace per page (a page builds its
  example over several blocks), in a subprocess whose HOME, XDG folders, temporary folder and
  data folder are the test's, with ``CRAWJUD_TASKS_*`` pointing at the test's Redis. The
  addresses the docs use for a Redis of one's own (``127.0.0.1:6379``, ``redis:6379``) are
  replaced by the test Redis's.
- ``<!-- docs-worker -->`` in a page starts a worker of the library's tasks for its blocks;
  ``<!-- docs-worker: myservice.worker:app -->`` one of the app that the page's files define.
- A block preceded by ``<!-- not-run: REASON -->`` is not run (see ``tests/docs_blocks.py``); the
  reason is required. ``<!-- example: NAME -->`` blocks are run by tests of their own.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from celery import Celery

from crawjud_tasks import EmbeddedRedis, Settings, create_app
from crawjud_tasks.testing import RedisServer, WorkerProcess, close_app, settings_for
from tests.docs_blocks import ROOT, Block, blocks_of, doc_pages
from tests.helpers import python_env, python_path

pytestmark = pytest.mark.slow

_PAGES = doc_pages()
_DRIVER = Path(__file__).with_name("docs_driver.py")
_PATH_COMMENT = re.compile(r"^# (?P<path>[\w./-]+\.py)\b")
_WORKER = re.compile(r"<!--\s*docs-worker(?:\s*:\s*(?P<spec>[\w.:]+))?\s*-->")
_OWN_REDIS = ("127.0.0.1:6379", "redis:6379")

#: The console commands that are run: read-only or local ones, quick, needing no worker.
#: Others are left out on purpose: ``pip``/``nox`` install things, ``worker``/``beat``/``demo``
#: run for long, ``run``/``runs`` need a worker and a bot, ``embedded start|stop`` act on a
#: server; a line with a placeholder (``RUN_ID``, ``[OPTIONS]``) is a synopsis, not a command.
_SAFE = ("--version", "--help", "info", "embedded status", "mail preview", "mail send-test")
_PLACEHOLDER = re.compile(r"\[|\]|\b[A-Z][A-Z_]{2,}\b|\.\.\.|\||<")


@pytest.fixture
def sandbox(
    crawjud_redis: RedisServer, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Settings, dict[str, str]]]:
    """The test's settings, and an environment whose every folder is inside the test's."""
    # Short: the embedded Redis's unix socket path must fit in 103 bytes.
    home = Path(tempfile.mkdtemp(prefix="cjd-", dir=tmp_path_factory.getbasetemp()))
    settings = settings_for(crawjud_redis, home / "data")
    env = {
        **settings.to_env(),
        "HOME": str(home),
        "XDG_DATA_HOME": str(home / ".local/share"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "TMPDIR": str(tmp_path),
        "PYTHONPATH": python_path(str(tmp_path / "project")),
    }
    (tmp_path / "project").mkdir()
    yield settings, env
    # A block with no broker starts the embedded Redis (as a service would, and leaves it
    # running): stop every one the page's blocks started in the sandbox.
    for data in (home / "data", home / ".local/share/crawjud-tasks"):
        EmbeddedRedis(data).stop()


def test_every_page_has_well_formed_code_fences() -> None:
    for page in _PAGES:
        blocks_of(page)  # raises on a fence never closed or with text after it


def _localised(text: str, server: RedisServer) -> str:
    address = server.url_for(0).removeprefix("redis://").rpartition("/")[0]
    for own in _OWN_REDIS:
        text = text.replace(own, address)
    return text


@pytest.fixture
def page_worker() -> Iterator[list[WorkerProcess]]:
    workers: list[WorkerProcess] = []
    yield workers
    for worker in workers:
        worker.stop()
        worker.log_path.unlink(missing_ok=True)


def _has_python(page: Path) -> bool:
    return any(
        block.language in {"python", "pycon"} and not block.not_run and not block.example
        for block in blocks_of(page)
    )


def _pages(keep: Callable[[Path], object]) -> list[Any]:
    """The pages ``keep`` selects, as parameters named after their paths."""
    return [pytest.param(page, id=str(page.relative_to(ROOT))) for page in _PAGES if keep(page)]


@pytest.mark.parametrize("page", _pages(_has_python))
def test_python_blocks_run(
    page: Path,
    sandbox: tuple[Settings, dict[str, str]],
    crawjud_redis: RedisServer,
    page_worker: list[WorkerProcess],
    tmp_path: Path,
) -> None:
    settings, env = sandbox
    project = tmp_path / "project"
    runnable: list[Block] = []
    tests: list[Block] = []
    for block in blocks_of(page):
        if block.language not in {"python", "pycon"} or block.not_run or block.example:
            continue
        target = _PATH_COMMENT.match(block.text)
        if target:
            path = project / target["path"]
            path.parent.mkdir(parents=True, exist_ok=True)
            (path.parent / "__init__.py").touch()
            path.write_text(_localised(block.text, crawjud_redis))
        elif re.search(r"^def test_", block.text, flags=re.M):
            tests.append(block)
        else:
            runnable.append(block)
    marker = _WORKER.search(page.read_text())
    host: Celery | None = None
    if marker and runnable:
        host = create_app(settings)
        worker = WorkerProcess(host, settings=settings, app_spec=marker["spec"], env=env)
        page_worker.append(worker)
        worker.start(timeout=60)
    try:
        failures = _run_blocks(runnable, env, crawjud_redis, tmp_path) if runnable else []
        failures += _run_tests(tests, env, project) if tests else []
    finally:
        if host is not None:
            close_app(host)
    assert not failures, "\n\n".join(f"{f['where']}:\n{f['error']}" for f in failures)


def _run_blocks(
    blocks: list[Block], env: dict[str, str], server: RedisServer, folder: Path
) -> list[dict[str, str]]:
    listing = [
        {"where": block.where, "language": block.language, "text": _localised(block.text, server)}
        for block in blocks
    ]
    (folder / "blocks.json").write_text(json.dumps(listing))
    done = subprocess.run(
        [sys.executable, str(_DRIVER), str(folder / "blocks.json"), str(folder / "result.json")],
        cwd=folder / "project", env=python_env(env), capture_output=True, text=True, timeout=120,
        check=False,
    )  # fmt: skip
    if done.returncode != 0:
        return [{"where": "the driver", "error": done.stdout + done.stderr}]
    failures: list[dict[str, str]] = json.loads((folder / "result.json").read_text())
    return failures


def _run_tests(blocks: list[Block], env: dict[str, str], project: Path) -> list[dict[str, str]]:
    # As strict as many host suites: a warning is an error.
    (project / "pytest.ini").write_text("[pytest]\nfilterwarnings =\n    error\n")
    for block in blocks:
        (project / f"test_block_{block.line}.py").write_text(block.text)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         *(f"test_block_{block.line}.py" for block in blocks)],
        cwd=project, env=python_env(env), capture_output=True, text=True, timeout=180,
        check=False,
    )  # fmt: skip
    if done.returncode == 0:
        return []
    where = ", ".join(block.where for block in blocks)
    return [{"where": where, "error": done.stdout[-3000:] + done.stderr[-2000:]}]


def _commands(page: Path) -> list[tuple[str, list[str]]]:
    commands: list[tuple[str, list[str]]] = []
    for block in blocks_of(page):
        if block.language != "console" or block.not_run:
            continue
        for number, line in enumerate(block.text.splitlines(), start=block.line + 1):
            text = line.removeprefix("$ ").split("  #")[0].strip()
            if not text.startswith("crawjud-tasks ") or _PLACEHOLDER.search(text):
                continue
            words = shlex.split(text)[1:]
            plain = " ".join(word for word in words if not word.startswith("-"))
            if words and (words[0] in _SAFE or any(plain.startswith(s) for s in _SAFE[2:])):
                commands.append((f"{block.path.name}:{number}", words))
    return commands


@pytest.mark.parametrize("page", _pages(_commands))
def test_safe_console_commands_run(
    page: Path, sandbox: tuple[Settings, dict[str, str]], tmp_path: Path
) -> None:
    commands = _commands(page)
    _, env = sandbox
    failed = []
    for where, words in commands:
        done = subprocess.run(
            [sys.executable, "-m", "crawjud_tasks", *words], env=python_env(env),
            cwd=tmp_path / "project", capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            failed.append(f"{where}: crawjud-tasks {' '.join(words)}\n{done.stderr[-800:]}")
    assert not failed, "\n".join(failed)
