"""Run ``runner`` inside this process, for the profilers (``bench/cpuprofile.py``, ``bench/cpusample.py``).

Only the standard library is imported here: whatever this module imported before the runner starts would be
missing from the runner's own start-up in a profile.
"""

from __future__ import annotations

import atexit
import runpy
import sys
from collections.abc import Callable

__all__ = ["run_runner_here"]


def run_runner_here(args: list[str], *, start: Callable[[], None], finish: Callable[[], None]) -> int:
    """``runner *args`` in this process: ``start()`` right before it, ``finish()`` once after it; its exit code.

    runner ends its process with ``os._exit`` once the command is over, after the exit callbacks: ``finish`` is
    one of those (a ``finally`` alone would never run), and runs once whichever way the command ends.
    """
    sys.argv = ["runner", *args]
    finished: list[bool] = []

    def once() -> None:
        if not finished:
            finished.append(True)
            finish()

    atexit.register(once)
    code = 0
    start()
    try:
        runpy.run_module("runner", run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        once()
    return code
