"""The layout of the source: small modules, each one concept."""

from __future__ import annotations

from pathlib import Path

SOURCE = Path(__file__).resolve().parent.parent / "src"
#: Past this, a module holds more than one concept: split it (see docs/internals.md, "Layers").
MAX_LINES = 450


def _line_count(path: Path) -> int:
    with path.open("rb") as lines:
        return sum(1 for _ in lines)


def test_every_module_in_src_has_at_most_450_lines() -> None:
    modules = sorted(SOURCE.rglob("*.py"))
    assert modules, f"no module found under {SOURCE}"
    too_long = [
        f"{path.relative_to(SOURCE)}: {count} lines"
        for path in modules
        if (count := _line_count(path)) > MAX_LINES
    ]
    assert not too_long, f"over {MAX_LINES} lines, split them: {', '.join(too_long)}"
