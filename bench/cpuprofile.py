"""Run ``python -m runner …`` under cProfile with a CPU-time clock (not wall time), for bench/overhead.py.

    python -m bench.cpuprofile OUT.prof run manifest.yaml --state … --base-url …

``python -m cProfile`` times with the wall clock, so fsyncs and network waits
look like work; this wrapper uses ``time.process_time`` so the profile shows
where the runner spends CPU. Writes the stats to OUT.prof and exits with the
runner's exit code.
"""

from __future__ import annotations

import cProfile
import sys
import time

from bench.inproc import run_runner_here


def main() -> int:
    out, args = sys.argv[1], sys.argv[2:]
    profile = cProfile.Profile(time.process_time)

    def dump() -> None:
        profile.disable()
        profile.dump_stats(out)

    return run_runner_here(args, start=profile.enable, finish=dump)


if __name__ == "__main__":
    sys.exit(main())
