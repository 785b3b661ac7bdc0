"""CPU per job of two runners, alternating, against the same simulator settings (docs/benchmarks.md §6).

    git archive <commit> | tar -x -C /tmp/before
    .venv/bin/python -m bench.cpu_ab --before /tmp/before --cases 2000:200:3 --repeat 4
    .venv/bin/python -m bench.cpu_ab --block uvloop --cases 400:40:1      # this tree with and without uvloop

Each run is ``python -m runner -q run … --rpm none --concurrency C`` (every other setting at its default)
started from an empty folder, so that ``PYTHONPATH`` alone picks the tree; the order of the two sides
alternates between repeats. Prints each run's CPU (user + sys of the whole process, start-up included)
over N and its efficiency (⌈N/C⌉·T over the process's wall time), and the mean CPU and median efficiency
of each side; ``bench.run_phases --against`` cuts the wall time into phases. A benchmark, never a timed
assertion.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import statistics
import tempfile
from pathlib import Path

from bench.gen_manifest import write_rows
from bench.procs import REPO, SimProcess, bytecode, measure, runner_cmd, runner_env


def _blocker(module: str, where: Path) -> Path:
    package = where / module
    package.mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").write_text(f"raise ImportError('{module} blocked by bench.cpu_ab')\n")
    return where


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", type=Path, default=None, help="a tree of the runner to compare with this one")
    parser.add_argument("--block", default=None, help="instead: this tree with this module made unimportable")
    parser.add_argument("--cases", default="2000:200:3", help="N:C:T,…")
    parser.add_argument("--repeat", type=int, default=4)
    args = parser.parse_args(argv)
    empty = Path(tempfile.mkdtemp(prefix="cpu_ab"))
    if args.before is not None:
        sides = {"before": str(args.before.resolve()), "after": str(REPO)}
    elif args.block:
        sides = {f"no {args.block}": f"{_blocker(args.block, empty / 'blocked')}:{REPO}", "this tree": str(REPO)}
    else:
        parser.error("give --before DIR or --block MODULE")
    bytecode(REPO)  # both sides as installed: neither side's first run compiles its modules
    if args.before is not None:
        bytecode(args.before.resolve())
    for case in args.cases.split(","):
        n, c, t = (float(x) for x in case.split(":"))
        per_job: dict[str, list[float]] = {name: [] for name in sides}
        efficiency: dict[str, list[float]] = {name: [] for name in sides}
        ideal = math.ceil(n / c) * t
        for r in range(args.repeat):
            order = list(sides.items()) if r % 2 == 0 else list(reversed(sides.items()))
            for name, path in order:
                work = Path(tempfile.mkdtemp(prefix="cpu_ab"))
                manifest = write_rows(int(n), work)
                with SimProcess({"task_seconds": t}, log=work / "sim.log") as sim:
                    cmd = runner_cmd("-q", "run", str(manifest), "--state", str(work / "state"), "--base-url",
                                     sim.base_url, "--rpm", "none", "--concurrency", str(int(c)))
                    m = measure(cmd, env=runner_env(PYTHONPATH=path), cwd=empty, log=work / "runner.log", timeout=900)
                per_job[name].append(1000 * m.cpu_s / n)
                efficiency[name].append(ideal / m.wall_s)
                print(f"N={n:g} C={c:g} T={t:g} {name:10s} exit {m.code} wall {m.wall_s:6.2f} s"
                      f" (efficiency {efficiency[name][-1]:.3f})  cpu {m.cpu_s:6.2f} s"
                      f" (user {m.user_s:.2f}, sys {m.sys_s:.2f})  {per_job[name][-1]:.2f} ms/job,"
                      f" load {os.getloadavg()[0]:.2f}", flush=True)
                shutil.rmtree(work, ignore_errors=True)
        print("  means: " + ", ".join(f"{name} {statistics.mean(v):.2f} ms/job" for name, v in per_job.items()))
        print("  efficiency (ideal ⌈N/C⌉·T over the whole process's wall time), medians: "
              + ", ".join(f"{name} {statistics.median(v):.3f}" for name, v in efficiency.items()))
    shutil.rmtree(empty, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
