"""Where `runner run`'s whole-process time goes beyond the engine's span (issue 14 items 2 and 4).

    .venv/bin/python -m bench.run_phases [--case 400:40:1] [--rounds 3] [--against DIR] [--json FILE]

One ``runner -q run`` of N jobs of T seconds at concurrency C (``--rpm none``, every other setting at its
default, a new ledger) against a simulator subprocess, as bench.saturation's ``little`` runs it; its
time from the moment the bench starts the process to the moment it reaps it, cut at what the ledger
records (nothing is patched into the runner):

    start      the process starts (the bench's clock, just before it forks)
    opened     ``runs.started_at``: interpreter, imports, manifest read, ledger opened (and created)
    first      the first submit attempt's ``started_at``: registration, the engine's start, the HTTP
               client, the balance check (the POST follows within the same millisecond)
    last       the last job's ``finished_at`` (stored): the engine's span is first → last
    ended      ``runs.ended_at``: the engine winding down, the final report, the run recorded
    reaped     the process has exited and been reaped: the ledger closed, the interpreter gone

``--against DIR`` runs the same case with another checkout (``PYTHONPATH=DIR``, same interpreter and
packages, both trees compiled to bytecode first), interleaved A B, B A, … so that before and after are
measured in the same minutes, neither side always first: the whole-process wall-time A/B of two trees
(``bench.cpu_ab`` is the CPU one). Prints each run as it ends (efficiency ⌈N/C⌉·T over the whole
process's wall time, CPU, load average; on stderr), then the medians per phase (milliseconds) and of
the efficiency; a benchmark, never a timed assertion.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.gen_manifest import write_rows
from bench.procs import REPO, SimProcess, bytecode, machine, runner_cmd, runner_env

PHASES = ("start→opened", "opened→first", "first→last (engine span)", "last→ended", "ended→reaped")


def one_run(n: int, c: int, t: float, work: Path, tree: Path | None) -> dict[str, Any]:
    manifest = write_rows(n, work)
    state = work / "state"
    env = runner_env(**({"PYTHONPATH": str(tree.resolve())} if tree is not None else {}))
    with SimProcess({"task_seconds": t}, log=work / "sim.log") as sim:
        cmd = runner_cmd("-q", "run", str(manifest), "--state", str(state), "--base-url", sim.base_url,
                         "--rpm", "none", "--concurrency", str(c))
        with (work / "runner.log").open("w") as log:
            start = time.time()
            proc = subprocess.Popen(cmd, env=env, cwd=work, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=log)
            _, status, usage = os.wait4(proc.pid, 0)
            reaped = time.time()
    db = sqlite3.connect(f"file:{state / 'ledger.db'}?mode=ro", uri=True)
    try:
        opened, ended = db.execute("SELECT started_at, ended_at FROM runs ORDER BY id LIMIT 1").fetchone()
        first = db.execute("SELECT min(started_at) FROM attempts WHERE kind = 'submit'").fetchone()[0]
        last, done = db.execute("SELECT max(finished_at), sum(state = 'done') FROM jobs").fetchone()
    finally:
        db.close()
    marks = [start, opened, first, last, ended, reaped]
    return {"exit": os.waitstatus_to_exitcode(status), "done": done, "cpu_s": round(usage.ru_utime + usage.ru_stime, 3),
            "wall_s": round(reaped - start, 3), "efficiency": round(math.ceil(n / c) * t / (reaped - start), 3),
            "over_span_s": round((reaped - start) - (last - first), 3),
            "phases_ms": {name: round((b - a) * 1000, 1) for name, a, b in zip(PHASES, marks[:-1], marks[1:], strict=True)}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", default="400:40:1", help="N:C:T (jobs, concurrency, task seconds)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--against", type=Path, default=None, help="another checkout of runner, run interleaved")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    n, c, t = args.case.split(":")
    trees: dict[str, Path | None] = {"this tree": None}
    if args.against is not None:
        trees["against"] = args.against
    bytecode(REPO)  # both trees as installed: neither side's first run compiles its modules
    if args.against is not None:
        bytecode(args.against.resolve())
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in trees}
    for r in range(args.rounds):
        order = list(trees.items()) if r % 2 == 0 else list(reversed(trees.items()))  # A B, B A, …: fair to both
        for name, tree in order:
            with tempfile.TemporaryDirectory(prefix="run-phases-") as work:
                runs[name].append(one_run(int(n), int(c), float(t), Path(work), tree))
                last = runs[name][-1]
                print(f"{name}: efficiency {last['efficiency']:.3f}, wall {last['wall_s']:.2f} s, cpu {last['cpu_s']:.2f} s,"
                      f" load {os.getloadavg()[0]:.2f}, phases {last['phases_ms']}", file=sys.stderr, flush=True)
    result: dict[str, Any] = {"machine": machine(), "case": args.case, "rounds": args.rounds, "runs": runs,
                              "median_efficiency": {name: statistics.median(r["efficiency"] for r in rs)
                                                    for name, rs in runs.items()},
                              "median_ms": {name: {phase: statistics.median(r["phases_ms"][phase] for r in rs)
                                                   for phase in PHASES} for name, rs in runs.items()}}
    print(json.dumps(result, indent=2, ensure_ascii=False))
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
