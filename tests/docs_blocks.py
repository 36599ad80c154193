"""The fenced code blocks of the docs and the README, for the tests that run them.

A block may be preceded (blank lines aside) by one HTML comment that says how to treat it:

- ``<!-- not-run: REASON -->``: the block is not run; the reason is required and shown in the
  test's id list (``pytest --collect-only``), e.g. ``needs a Kubernetes cluster``.
- ``<!-- example: NAME -->``: the block is a named example that a test of its own runs (found
  with :func:`named_block`), e.g. the FastAPI service that ``test_web_service.py`` serves.
- ``<!-- run-after: previous -->``: the block runs in the same namespace as the previous run
  block of the page (a page that builds an example over several blocks).
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

__all__ = ["ROOT", "Block", "blocks_of", "doc_pages", "named_block"]

ROOT = Path(__file__).resolve().parent.parent

_FENCE = re.compile(r"^(?P<indent> *)(?P<fence>```+|~~~+)(?P<info>[^`\n]*)$")
_SNIPPET = re.compile(r'^--8<-- "(?P<path>[^"]+)"$', flags=re.M)
_COMMENT = re.compile(
    r"^\s*<!--\s*(?P<kind>not-run|example|run-after)\s*:\s*(?P<value>.*?)\s*-->\s*$"
)


@dataclasses.dataclass(frozen=True)
class Block:
    """One fenced block: where it is, its language, its text, and its marker if any."""

    path: Path
    line: int
    language: str
    text: str
    not_run: str | None = None
    example: str | None = None
    run_after: bool = False

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def doc_pages() -> list[Path]:
    """Every page the runner covers: ``README.md`` and every ``docs/*.md``, new ones included."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def blocks_of(path: Path) -> list[Block]:
    """The fenced blocks of a Markdown page, in order.

    Raises:
        ValueError: a fence is never closed (the built page would swap code and prose).
    """
    lines = path.read_text().splitlines()
    blocks: list[Block] = []
    marker: tuple[str, str] | None = None
    index = 0
    while index < len(lines):
        line = lines[index]
        comment = _COMMENT.match(line)
        if comment:
            marker = (comment["kind"], comment["value"])
            index += 1
            continue
        fence = _FENCE.match(line)
        if not fence:
            if line.strip():
                marker = None
            index += 1
            continue
        start = index
        closing = re.compile(rf"^ *{re.escape(fence['fence'])}\s*$")
        index += 1
        body: list[str] = []
        while index < len(lines) and not closing.match(lines[index]):
            if lines[index].lstrip().startswith(fence["fence"]) and not _FENCE.match(lines[index]):
                msg = (
                    f"{path.name}:{index + 1}: text after a code fence "
                    f"({lines[index].strip()[:40]!r}): the fence must be alone on its line"
                )
                raise ValueError(msg)
            body.append(lines[index])
            index += 1
        if index == len(lines):
            msg = f"{path.name}:{start + 1}: a code fence is never closed"
            raise ValueError(msg)
        indent = len(fence["indent"])
        text = _expand_snippets("\n".join(entry[indent:] for entry in body) + "\n")
        kind, value = marker or ("", "")
        if kind == "not-run" and not value:
            msg = f"{path.name}:{start + 1}: a not-run marker needs its reason"
            raise ValueError(msg)
        blocks.append(
            Block(
                path=path,
                line=start + 1,
                language=fence["info"].strip().split(" ")[0].lower(),
                text=text,
                not_run=value if kind == "not-run" else None,
                example=value if kind == "example" else None,
                run_after=kind == "run-after",
            )
        )
        marker = None
        index += 1
    return blocks


def _expand_snippets(text: str) -> str:
    """A block whose lines include files as ``--8<-- "path"`` (pymdownx.snippets, paths from
    the repository's root) holds those files' text, as the built page does."""
    return _SNIPPET.sub(lambda match: (ROOT / match["path"]).read_text().rstrip("\n"), text)


def named_block(path: Path, name: str) -> Block:
    """The block of ``path`` marked ``<!-- example: name -->``."""
    (block,) = (block for block in blocks_of(path) if block.example == name)
    return block
