"""Where a Little's-law run spends its CPU: a sampling profile on CPU time, by part of the runner.

    .venv/bin/python -m bench.cpusample --cases 400:40:1 --runs 3       # defaults apart from --rpm none
    .venv/bin/python -m bench.cpusample --cases 1:40:1 --runs 6 --top 20   # the fixed cost of a process

cProfile charges every Python call (its hook runs on each one), so a run under it costs ~4-5x its CPU,
and code made of many small calls (a generator over a URL's characters, pydantic's validators) looks
several times dearer than it is. This profiler samples instead: a ``SIGPROF`` timer on the process's CPU
time (user + system, ``ITIMER_PROF``) interrupts it every 0.5 ms of CPU (the kernel's tick makes it
~4 ms here) and records the main thread's stack. Each sample is a slice of CPU, so the shares add up to
the process's CPU; a worker thread's CPU (an fsync handed to a thread) lands on whatever the main thread
was doing, most often waiting in the event loop.

For each case (N jobs, concurrency C, tasks of T s, as in ``bench.saturation little``) the simulator
runs as a subprocess and ``runner run`` under the sampler ``--runs`` times; the samples of every run are
added up. Prints the share of each part (imports, ledger, storage, polls, submits, downloads, the event
loop), the libraries the samples end in, and the runner's functions by inclusive share; ``--json FILE``
writes them. A benchmark, never a timed assertion.
"""

from __future__ import annotations

import argparse
import collections
import json
import signal
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from types import FrameType
from typing import Any

from bench.inproc import run_runner_here

#: The part a sample belongs to: the first rule whose marker is in its stack, in this order.
PARTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("imports", ("_find_and_load",)),
    ("ledger", ("runner/ledger/",)),
    ("storage", ("runner/storage/",)),
    ("polls", ("engine/sources/poller.py",)),
    ("submits", ("engine/submit.py",)),
    ("downloads", ("engine/fetch.py", "client/download.py")),
    ("event loop", ("asyncio/", "selectors.py")),
)


def part_of(stack: str) -> str:
    for name, markers in PARTS:
        if any(marker in stack for marker in markers):
            return name
    return "other"


def _library(frame: str) -> str:
    """``runner/<module>`` for the runner's own code, else the first part of the library's path."""
    where = frame.split(" (", 1)[1] if " (" in frame else frame
    where = where.rsplit(":", 1)[0]
    if "runner/" in where and "site-packages" not in where:
        return "runner/" + where.split("runner/", 1)[1]
    if where.startswith("<"):
        return where
    where = where.split("site-packages/", 1)[-1]
    where = where.split("/lib/python3.", 1)[-1].split("/", 1)[-1] if "/lib/python3." in where else where
    return where.split("/", 1)[0]


def summarise(stacks: Iterable[tuple[str, int]], *, top: int = 25) -> dict[str, Any]:
    """The figures of a set of collapsed stacks (``frame;frame;… count``, outermost first)."""
    parts: collections.Counter[str] = collections.Counter()
    libraries: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for stack, count in stacks:
        total += count
        parts[part_of(stack)] += count
        frames = stack.split(";")
        if "_find_and_load" not in stack:
            libraries[_library(frames[-1])] += count
        seen: set[str] = set()
        for frame in frames:
            name = frame.rsplit(":", 1)[0] + ")" if "runner/" in frame and "site-packages" not in frame else None
            if name is not None and name not in seen:
                seen.add(name)
                inclusive[name] += count
    def share(counter: collections.Counter[str], limit: int | None = None) -> list[tuple[str, float]]:
        return [(name, round(100 * count / total, 1)) for name, count in counter.most_common(limit)]
    not_imports = total - parts["imports"]
    return {
        "samples": total,
        "parts_pct": share(parts),
        "libraries_pct_of_not_imports": [(name, round(100 * count / not_imports, 1))
                                         for name, count in libraries.most_common(top)] if not_imports else [],
        "runner_inclusive_pct": share(inclusive, top),
    }


def read_stacks(path: Path) -> list[tuple[str, int]]:
    stacks = []
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        stacks.append((stack, int(count)))
    return stacks


# ------------------------------------------------------------------ the child: runner under the sampler


def _frame_name(frame: FrameType) -> str:
    code = frame.f_code
    return f"{code.co_name} ({code.co_filename}:{frame.f_lineno})"


def _child(out: Path, args: list[str]) -> int:
    counts: collections.Counter[str] = collections.Counter()

    def sample(signum: int, frame: FrameType | None) -> None:
        names = []
        while frame is not None:
            names.append(_frame_name(frame))
            frame = frame.f_back
        counts[";".join(reversed(names))] += 1

    def write() -> None:
        signal.setitimer(signal.ITIMER_PROF, 0, 0)
        out.write_text("".join(f"{stack} {count}\n" for stack, count in counts.items()))

    def begin() -> None:
        signal.signal(signal.SIGPROF, sample)
        signal.setitimer(signal.ITIMER_PROF, 0.0005, 0.0005)

    return run_runner_here(args, start=begin, finish=write)


# ------------------------------------------------------------------ the cases


def _case(n: int, c: int, t: float, runs: int, workdir: Path) -> list[tuple[str, int]]:
    from bench.gen_manifest import write_rows
    from bench.procs import SimProcess, measure, runner_env

    stacks: list[tuple[str, int]] = []
    for run in range(runs):
        here = workdir / f"n{n}-c{c}-run{run}"
        here.mkdir(parents=True)
        manifest = write_rows(n, here)
        out = here / "stacks.txt"
        with SimProcess({"task_seconds": t}, log=here / "sim.log") as sim:
            m = measure([sys.executable, "-m", "bench.cpusample", "--child", str(out), "-q", "run", str(manifest),
                         "--state", str(here / "state"), "--base-url", sim.base_url, "--rpm", "none",
                         "--concurrency", str(c)], env=runner_env(), log=here / "runner.log", timeout=600)
        if m.code != 0:
            raise SystemExit(f"runner exited {m.code}; see {here / 'runner.log'}")
        print(f"  run {run + 1}: {m.cpu_s:.2f} s CPU (user {m.user_s:.2f}, sys {m.sys_s:.2f}), wall {m.wall_s:.2f} s",
              flush=True)
        stacks += read_stacks(out)
    return stacks


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        return _child(Path(argv[1]), argv[2:])
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", default="400:40:1", help="N:C:T[,N:C:T…] (default 400:40:1)")
    parser.add_argument("--runs", type=int, default=3, help="runs of each case, their samples added up")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    from bench.procs import machine

    print(machine())
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-cpusample-"))
    figures = []
    started = time.monotonic()
    for case in args.cases.split(","):
        n, c, t = case.split(":")
        print(f"N={n} C={c} T={t}:", flush=True)
        summary = summarise(_case(int(n), int(c), float(t), args.runs, workdir), top=args.top)
        summary.update({"N": int(n), "C": int(c), "T": float(t), "runs": args.runs})
        figures.append(summary)
        print(f"  {summary['samples']} samples")
        for key in ("parts_pct", "libraries_pct_of_not_imports", "runner_inclusive_pct"):
            print(f"  {key}:")
            for name, pct in summary[key]:
                print(f"    {pct:5.1f} %  {name}")
    print(f"elapsed {time.monotonic() - started:.0f} s; workdir {workdir}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
