"""The cold ``crawjud-tasks demo``: a fresh data folder, so the embedded Redis starts from nothing.

Each run is ``python -m crawjud_tasks demo`` as a subprocess, with ``CRAWJUD_TASKS_DATA_DIR`` set
to a new short folder under /tmp and no other ``CRAWJUD_TASKS_*`` variable; the figure is the
wall time of the whole subprocess, interpreter start-up included.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from typing import Any

from common import child_env, python

__all__ = ["measure"]


def measure(*, runs: int, log: Any = print) -> dict[str, Any]:
    """Run the demo ``runs`` times; seconds of each run."""
    seconds = []
    for number in range(runs):
        data_dir = tempfile.mkdtemp(prefix="cjb-", dir="/tmp")
        env = child_env() | {"CRAWJUD_TASKS_DATA_DIR": data_dir}
        try:
            started = time.perf_counter()
            run = subprocess.run(
                [python(), "-m", "crawjud_tasks", "demo"],
                env=env,
                check=False,
                capture_output=True,
                text=True,
                timeout=120,
            )
            took = time.perf_counter() - started
        finally:
            shutil.rmtree(data_dir, ignore_errors=True)
        if run.returncode != 0:
            msg = f"crawjud-tasks demo failed ({run.returncode}):\n{run.stdout}\n{run.stderr}"
            raise RuntimeError(msg)
        seconds.append(took)
        log(f"  run {number + 1}/{runs}: {took:.2f} s")
    return {"seconds": seconds}
