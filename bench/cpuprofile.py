"""Run ``python -m runner …`` under cProfile with a CPU-time clock (not wall time), for bench/overhead.py.

    python -m bench.cpuprofile OUT.prof run manifest.yaml --state … --base-url …

``python -m cProfile`` times with the wall clock, so fsyncs and network waits
look like work; this wrapper uses ``time.process_time`` so the profile shows
where the runner spends CPU. Writes the stats to OUT.prof and exits with the
runner's exit code.
"""

from __future__ import annotations

import atexit
import cProfile
import runpy
import sys
import time


def main() -> int:
    out, args = sys.argv[1], sys.argv[2:]
    sys.argv = ["runner", *args]
    profile = cProfile.Profile(time.process_time)
    dumped: list[bool] = []

    def dump() -> None:
        if not dumped:
            dumped.append(True)
            profile.disable()
            profile.dump_stats(out)

    # runner ends its process with os._exit once the command is over, after the exit callbacks: the
    # stats are written by one of those (a `finally` here would never run).
    atexit.register(dump)
    code = 0
    profile.enable()
    try:
        runpy.run_module("runner", run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        dump()
    return code


if __name__ == "__main__":
    sys.exit(main())
