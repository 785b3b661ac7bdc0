"""CPU per write-ahead on a SQLite ledger, one job a durable commit against groups of k (``mark_submitting_many``).

    .venv/bin/python -m bench.write_ahead --jobs 2000 --groups 1,2,10,200
    .venv/bin/python -m bench.write_ahead --jobs 1000 --groups 1,10 --postgres       # a throwaway local server
    PYTHONPATH=/tmp/before .venv/bin/python bench/write_ahead.py --postgres …          # another tree's runner

With ``--postgres`` the ledger is PostgreSQL's (a fresh database of a throwaway server, :mod:`runner.testing_pg`, on
loopback, fsync on): the wall time is then mostly the server's durable commit, and the CPU this process's alone.

For each group size: a fresh ledger of N jobs, then every job written ahead (``mark_submitting`` one at a time for
k = 1, ``mark_submitting_many`` of k keys otherwise); prints the process's user + sys CPU and the wall time per job.
A benchmark, never a timed assertion.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from runner.jobs import JobSpec
from runner.ledger.factory import open_backend
from runner.testing_pg import TempPostgres


def _cpu() -> tuple[float, float]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime, usage.ru_stime


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--groups", default="1,2,10,200")
    parser.add_argument("--postgres", action="store_true", help="a PostgreSQL ledger (a throwaway local server)")
    args = parser.parse_args(argv)
    if not args.postgres:
        return _measure(args.jobs, args.groups, lambda: None)
    with TempPostgres.start() as server:
        return _measure(args.jobs, args.groups, server.create_database)


def _measure(n: int, groups: str, url: Callable[[], str | None]) -> int:
    for group in (int(k) for k in groups.split(",")):
        specs = [JobSpec.build(model="kling-v3.0-pro-t2v", request={"prompt": f"clip {i}", "duration": 5},
                               vars={"i": i}, repeat=1, output=f"c{i}.mp4", estimated_usd=0.56) for i in range(n)]
        with open_backend(Path(tempfile.mkdtemp(prefix="write_ahead")), url=url()) as ledger:
            ledger.register("m", "d", specs)
            ledger.start_run(argv=["bench"])
            keys = [spec.key for spec in specs]
            (cpu0, sys0), wall0 = _cpu(), time.perf_counter()
            for i in range(0, n, group):
                if group == 1:
                    ledger.mark_submitting(keys[i])
                else:
                    ledger.mark_submitting_many(keys[i:i + group])
            (cpu1, sys1), wall1 = _cpu(), time.perf_counter()
        print(f"group {group:4d}: cpu {1e6 * (cpu1 - cpu0) / n:7.1f} us/job (sys {1e6 * (sys1 - sys0) / n:6.1f})"
              f"  wall {1e6 * (wall1 - wall0) / n:7.1f} us/job")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
