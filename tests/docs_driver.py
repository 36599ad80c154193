"""Run a page's Python blocks in order, in one namespace, and write what failed as JSON.

``python tests/docs_driver.py BLOCKS.json RESULT.json``: BLOCKS is a list of
``{"where", "language", "text"}``; RESULT gets ``[{"where", "error"}]``. ``python`` blocks are
executed; ``pycon`` blocks are checked as doctests. A failing block does not stop the others.
"""

from __future__ import annotations

import doctest
import json
import sys
import traceback
import types
from pathlib import Path


def main(blocks_path: str, result_path: str) -> None:
    blocks = json.loads(Path(blocks_path).read_text())
    # A real module: dataclasses and typing look classes' modules up in sys.modules.
    module = types.ModuleType("__docs__")
    sys.modules[module.__name__] = module
    namespace: dict[str, object] = module.__dict__
    failures: list[dict[str, str]] = []
    for block in blocks:
        where, text = block["where"], block["text"]
        try:
            if block["language"] == "pycon":
                _doctest(text, namespace, where)
            else:
                exec(compile(text, where, "exec"), namespace)
        except BaseException:
            failures.append({"where": where, "error": traceback.format_exc(limit=6)})
    Path(result_path).write_text(json.dumps(failures))


def _doctest(text: str, namespace: dict[str, object], where: str) -> None:
    exec("from crawjud_tasks import *", namespace)
    test = doctest.DocTestParser().get_doctest(text, namespace, where, where, 0)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    lines: list[str] = []
    runner.run(test, out=lines.append)
    if runner.failures:
        raise AssertionError("".join(lines))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
