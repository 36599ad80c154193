"""The typed API as mypy and pyright see it: correct usage passes, wrong usage fails where marked.

``tests/typing`` holds files that are type-checked, never run. ``ok_*.py`` (and the contracts they
share) must be clean in both checkers; they pin inferred types with ``assert_type``. In
``neg_*.py``, each line that must fail carries a marker naming the error of each checker::

    c.add.delay("1")  # E: mypy[arg-type] pyright[reportArgumentType `"a"`]

An optional message substring follows the code in backticks. Every marker must be hit on its
line, and nothing unmarked may be reported anywhere. Each checker runs once, on the whole folder,
as installed next to this Python (the ``test`` extra pins both).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

import crawjud_tasks

FOLDER = Path(__file__).parent / "typing"
MYPY_CONFIG = FOLDER / "mypy.ini"
PYRIGHT_CONFIG = FOLDER / "pyrightconfig.json"

_MARKER = re.compile(r"#\s*E:(?P<entries>.*)$")
_ENTRY = re.compile(r"(?P<checker>mypy|pyright)\[(?P<code>[\w-]+)(?:\s+`(?P<text>[^`]*)`)?\]")


@dataclass(frozen=True, order=True)
class Diagnostic:
    """One error a checker reported."""

    checker: str
    file: str
    line: int
    code: str
    message: str

    def __str__(self) -> str:
        message = self.message.replace("\n", " ")
        return f"{self.file}:{self.line}: {self.checker}[{self.code}] {message}"


@dataclass(frozen=True, order=True)
class Expected:
    """One marker: the error a checker must report on a line."""

    checker: str
    file: str
    line: int
    code: str
    text: str | None

    def hit_by(self, diagnostic: Diagnostic) -> bool:
        return (
            (diagnostic.checker, diagnostic.file, diagnostic.line, diagnostic.code)
            == (self.checker, self.file, self.line, self.code)
        ) and (self.text is None or self.text in diagnostic.message)

    def __str__(self) -> str:
        text = "" if self.text is None else f" containing {self.text!r}"
        return f"{self.file}:{self.line}: {self.checker}[{self.code}]{text}"


def _files() -> list[Path]:
    return sorted(FOLDER.glob("*.py"))


def _markers() -> list[Expected]:
    expected: list[Expected] = []
    for path in _files():
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            marker = _MARKER.search(line)
            if marker is None:
                continue
            entries = list(_ENTRY.finditer(marker["entries"]))
            assert entries, f"{path.name}:{number}: a marker names no mypy[...] or pyright[...]"
            expected.extend(
                Expected(entry["checker"], path.name, number, entry["code"], entry["text"])
                for entry in entries
            )
    return expected


def _environment() -> dict[str, str]:
    """The environment for both checkers: they see the crawjud_tasks that this test imports.

    Installed in site-packages (the nox session), both find it there. From a checkout run with
    ``PYTHONPATH=src``, or an editable install of another checkout, its folder goes first on
    their path (pyright asks the interpreter for its path, which reads ``PYTHONPATH``).
    """
    env = {**os.environ, "PYRIGHT_PYTHON_IGNORE_WARNINGS": "1"}
    env.pop("MYPYPATH", None)
    root = Path(crawjud_tasks.__file__).resolve().parent.parent
    if root.name not in ("site-packages", "dist-packages"):
        env["MYPYPATH"] = str(root)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH")]))
    return env


def _run(command: list[str], cwd: Path) -> str:
    completed = subprocess.run(
        command,
        capture_output=True,
        text=True,
        env=_environment(),
        cwd=cwd,
        timeout=240,
        check=False,
    )
    # Both exit with 1 when they report errors (the negative files always have some), and with
    # another code when they could not check at all.
    if completed.returncode not in (0, 1):
        pytest.fail(
            f"{command[0]} failed with exit code {completed.returncode}:\n"
            f"{completed.stdout}\n{completed.stderr}"
        )
    return completed.stdout


@pytest.fixture(scope="module")
def mypy_diagnostics(tmp_path_factory: pytest.TempPathFactory) -> list[Diagnostic]:
    cache = tmp_path_factory.mktemp("mypy")
    command = [
        sys.executable,
        "-m",
        "mypy",
        "--config-file",
        str(MYPY_CONFIG),
        "--cache-dir",
        str(cache / ".mypy_cache"),
        "-O",
        "json",
        *(str(path) for path in _files()),
    ]
    diagnostics: list[Diagnostic] = []
    for line in _run(command, cache).splitlines():
        if not line.startswith("{"):
            continue
        entry = json.loads(line)
        if entry["severity"] == "note":
            continue
        diagnostics.append(
            Diagnostic(
                "mypy", Path(entry["file"]).name, entry["line"], entry["code"], entry["message"]
            )
        )
    return diagnostics


@pytest.fixture(scope="module")
def pyright_diagnostics(tmp_path_factory: pytest.TempPathFactory) -> list[Diagnostic]:
    pyright = Path(sys.executable).parent / "pyright"
    command = [
        str(pyright),
        "--outputjson",
        "--pythonpath",
        sys.executable,
        "--project",
        str(PYRIGHT_CONFIG),
        *(str(path) for path in _files()),
    ]
    report = json.loads(_run(command, tmp_path_factory.mktemp("pyright")))
    return [
        Diagnostic(
            "pyright",
            Path(entry["file"]).name,
            entry["range"]["start"]["line"] + 1,
            entry.get("rule", ""),
            entry["message"],
        )
        for entry in report["generalDiagnostics"]
        if entry["severity"] in ("error", "warning")
    ]


def _differences(
    checker: str, expected: list[Expected], diagnostics: list[Diagnostic]
) -> list[str]:
    """What is missing from, and what is extra in, what ``checker`` reported; empty if nothing."""
    missing = [marker for marker in expected if not any(map(marker.hit_by, diagnostics))]
    marked = {(marker.file, marker.line, marker.code) for marker in expected}
    unexpected = [d for d in diagnostics if (d.file, d.line, d.code) not in marked]
    report: list[str] = []
    if missing:
        report.append(f"missing ({len(missing)}): marked, but {checker} did not report them")
        report.extend(f"  {marker}" for marker in sorted(missing))
        # What the checker did say on those lines, to see a changed wording or code at once.
        lines = {(marker.file, marker.line) for marker in missing}
        said = sorted(d for d in diagnostics if (d.file, d.line) in lines)
        if said:
            report.append("  what it reported on those lines:")
            report.extend(f"    {diagnostic}" for diagnostic in said)
    if unexpected:
        report.append(f"unexpected ({len(unexpected)}): reported by {checker}, but not marked")
        report.extend(f"  {diagnostic}" for diagnostic in sorted(unexpected))
    return report


def _check(checker: str, diagnostics: list[Diagnostic]) -> None:
    expected = [marker for marker in _markers() if marker.checker == checker]
    report = _differences(checker, expected, diagnostics)
    assert not report, "\n".join([f"{checker} on tests/typing:", *report])


def test_only_negative_files_have_markers() -> None:
    markers = _markers()
    assert {marker.file for marker in markers} == {
        path.name for path in _files() if path.name.startswith("neg_")
    }
    assert len({(marker.file, marker.line) for marker in markers}) >= 20


def test_mypy_reports_exactly_the_markers(mypy_diagnostics: list[Diagnostic]) -> None:
    _check("mypy", mypy_diagnostics)


def test_pyright_reports_exactly_the_markers(pyright_diagnostics: list[Diagnostic]) -> None:
    _check("pyright", pyright_diagnostics)


def test_a_marker_not_hit_and_an_error_not_marked_are_both_reported() -> None:
    marker = Expected("mypy", "neg_a.py", 3, "arg-type", 'expected "str"')
    reported = [
        Diagnostic("mypy", "neg_a.py", 3, "arg-type", 'has type "str"; expected "int"'),
        Diagnostic("mypy", "ok_b.py", 7, "assignment", "Incompatible types\nin assignment"),
    ]
    assert _differences("mypy", [marker], reported) == [
        "missing (1): marked, but mypy did not report them",
        "  neg_a.py:3: mypy[arg-type] containing 'expected \"str\"'",
        "  what it reported on those lines:",
        '    neg_a.py:3: mypy[arg-type] has type "str"; expected "int"',
        "unexpected (1): reported by mypy, but not marked",
        "  ok_b.py:7: mypy[assignment] Incompatible types in assignment",
    ]
    without_text = Expected("mypy", "neg_a.py", 3, "arg-type", None)
    assert _differences("mypy", [without_text], reported[:1]) == []
