"""Saturation against the physical limit: Little's law and the rate limit.

    .venv/bin/python -m bench.saturation little              # (400, 40, 1 s) and (2000, 200, 2 s)
    .venv/bin/python -m bench.saturation rpm --rpm 600 --seconds 120
    .venv/bin/python -m bench.saturation discover --rpm 600 --seconds 240

``little``: N jobs of T seconds with at most C outstanding cannot finish before
⌈N/C⌉·T. The runner runs as a subprocess against a simulator subprocess
(``--rpm none --poll-rpm none --poll-interval 0.05``); the figure is
ideal / achieved wall time, both for the whole process (start-up and planning
included) and for the engine's span (first submit to last file stored, from
the ledger).

With ``--naive S`` (default 1 s; 0 turns it off) ``little`` also runs
``bench/naive.py`` — a threaded stdlib runner with a SQLite ledger, polling
every S seconds — on other prompts against the same simulator, right after the
runner, and prints its wall time, efficiency and CPU per job (user + sys of
the whole process, start-up included, over N) beside the runner's.

``rpm``: the same limit R configured on both sides, no concurrency bound: the
achieved submit rate (accepted POSTs, first to last) over R, and the 429s.

``discover``: the runner has no rate (``--rpm none``), the simulator enforces
R in a sliding minute: accepted submits per sliding minute over time, the 429s,
and the convergence time — from the start to the first sliding minute after
which every sliding minute admits ≥ 90 % of R.

Prints its figures (and ``--json FILE``); a benchmark, never a timed assertion.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.gen_manifest import write_rows
from bench.procs import Measured, SimProcess, bytecode, machine, measure, runner_cmd, runner_env


def _manifest(n: int, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    return write_rows(n, out)


def _ledger(state: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{state / 'ledger.db'}?mode=ro", uri=True)


def little(n: int, c: int, t: float, workdir: Path, extra: list[str], *, defaults: bool = False,
           naive_interval: float | None = None) -> dict[str, Any]:
    """``defaults``: every setting at its default apart from ``--rpm none`` (issue 14's figure).

    ``naive_interval``: then run bench/naive.py (the threaded stdlib baseline, polling at that interval) on the
    same simulator right after the runner, and report its wall time, efficiency and CPU per job beside ours.
    """
    manifest = _manifest(n, workdir)
    state = workdir / "state"
    tuned = [] if defaults else ["--poll-rpm", "none", "--poll-interval", "0.05"]
    with SimProcess({"task_seconds": t}, log=workdir / "sim.log") as sim:
        cmd = runner_cmd("-q", "run", str(manifest), "--state", str(state), "--base-url", sim.base_url,
                         "--rpm", "none", *tuned, "--concurrency", str(c), *extra)
        result = measure(cmd, env=runner_env(), log=workdir / "runner.log", timeout=600)
        stats = sim.stats()
        naive = _naive(sim.base_url, workdir, c, naive_interval, stats["polls"]) if naive_interval else None
    db = _ledger(state)
    try:
        first, last, done = db.execute(
            "SELECT min(submitted_at), max(finished_at), sum(state = 'done') FROM jobs").fetchone()
    finally:
        db.close()
    ideal = math.ceil(n / c) * t
    span = last - first
    figure: dict[str, Any] = {
        "N": n, "C": c, "T": t, "ideal_s": ideal, "exit": result.code, "done": done,
        "process_wall_s": round(result.wall_s, 2), "engine_span_s": round(span, 2),
        "ratio_process": round(ideal / result.wall_s, 3), "ratio_engine": round(ideal / span, 3),
        "runner_cpu_s": round(result.cpu_s, 2), "runner_user_sys_s": [round(result.user_s, 2), round(result.sys_s, 2)],
        "cpu_ms_per_job": round(1000 * result.cpu_s / n, 2),
        "polls": stats["polls"], "polls_per_job": round(stats["polls"] / n, 2),
        "extra_flags": extra, "defaults_apart_from_rpm_none": defaults,
    }
    if naive is not None:
        m, polls, code = naive
        figure["naive"] = {
            "exit": code, "poll_interval_s": naive_interval, "process_wall_s": round(m.wall_s, 2),
            "ratio_process": round(ideal / m.wall_s, 3), "cpu_s": round(m.cpu_s, 2),
            "user_sys_s": [round(m.user_s, 2), round(m.sys_s, 2)],
            "cpu_ms_per_job": round(1000 * m.cpu_s / n, 2), "polls_per_job": round(polls / n, 2),
        }
        figure["cpu_per_job_runner_over_naive"] = round(result.cpu_s / m.cpu_s, 3)
    return figure


def _naive(base_url: str, workdir: Path, c: int, interval: float, polls_before: int) -> tuple[Measured, int, int]:
    """bench/naive.py on the same simulator, right after the runner, on other prompts (fresh tasks)."""
    out = workdir / "naive"
    out.mkdir(parents=True, exist_ok=True)
    rows = out / "prompts.csv"
    rows.write_text((workdir / "prompts.csv").read_text().replace("A slow aerial", "A naive aerial"))
    cmd = [sys.executable, "-m", "bench.naive", base_url, str(rows), str(out / "files"), "--concurrency", str(c),
           "--poll-interval", str(interval)]
    m = measure(cmd, env=runner_env(), log=workdir / "naive.log", timeout=1200, stdout=workdir / "naive.out")
    response = httpx.get(f"{base_url}/_sim/stats", timeout=60)
    return m, int(response.json()["polls"]) - polls_before, m.code


def _submit_times(state: Path) -> tuple[list[float], int]:
    db = _ledger(state)
    try:
        accepted = [row[0] for row in db.execute(
            "SELECT started_at FROM attempts WHERE kind = 'submit' AND outcome = 'accepted' ORDER BY started_at")]
        refused_429 = db.execute(
            "SELECT count(*) FROM attempts WHERE kind = 'submit' AND http_status = 429").fetchone()[0]
    finally:
        db.close()
    return accepted, int(refused_429)


def rpm_configured(r: int, seconds: float, workdir: Path, task_seconds: float) -> dict[str, Any]:
    n = int(r * seconds / 60) + r  # more jobs than the time allows: the rate, not the batch, is the limit
    manifest = _manifest(n, workdir)
    state = workdir / "state"
    with SimProcess({"task_seconds": task_seconds, "rpm": r}, log=workdir / "sim.log") as sim:
        cmd = runner_cmd("-q", "run", str(manifest), "--state", str(state), "--base-url", sim.base_url,
                         "--rpm", str(r), "--poll-rpm", "none", "--poll-interval", "0.5",
                         "--concurrency", "1000000", "--max-runtime", str(seconds))
        result = measure(cmd, env=runner_env(), log=workdir / "runner.log", timeout=seconds + 300)
        stats = sim.stats()
    accepted, refused = _submit_times(state)
    rate = (len(accepted) - 1) / (accepted[-1] - accepted[0]) * 60 if len(accepted) > 1 else 0.0
    return {
        "R": r, "seconds": seconds, "exit": result.code, "accepted": len(accepted),
        "achieved_rpm": round(rate, 2), "ratio": round(rate / r, 4), "runner_429s": refused,
        "simulator_responses": stats["responses"],
    }


def discover(r: int, seconds: float, workdir: Path, task_seconds: float, retry_after: float | None) -> dict[str, Any]:
    n = int(r * seconds / 60) * 2 + r
    manifest = _manifest(n, workdir)
    state = workdir / "state"
    sim_config: dict[str, Any] = {"task_seconds": task_seconds, "rpm": r, "retry_after": retry_after,
                                  "retry_after_header": retry_after is not None}
    with SimProcess(sim_config, log=workdir / "sim.log") as sim:
        cmd = runner_cmd("-q", "run", str(manifest), "--state", str(state), "--base-url", sim.base_url,
                         "--rpm", "none", "--poll-rpm", "none", "--poll-interval", "0.5",
                         "--concurrency", "1000000", "--max-runtime", str(seconds))
        result = measure(cmd, env=runner_env(), log=workdir / "runner.log", timeout=seconds + 300)
        stats = sim.stats()
    accepted, refused = _submit_times(state)
    db = _ledger(state)
    try:
        tried = [row[0] for row in db.execute(
            "SELECT started_at FROM attempts WHERE kind = 'submit' AND http_status = 429 ORDER BY started_at")]
    finally:
        db.close()
    t0 = accepted[0] if accepted else 0.0
    rel = [a - t0 for a in accepted]
    end = max(rel) if rel else 0.0
    windows: list[tuple[int, int]] = []  # (start second, accepted in [start, start + 60))
    j = k = 0
    for start in range(0, max(0, int(end) - 60) + 1):
        while j < len(rel) and rel[j] < start:
            j += 1
        while k < len(rel) and rel[k] < start + 60:
            k += 1
        windows.append((start, k - j))
    converged = None
    for i in range(len(windows)):
        if all(count >= 0.9 * r for _, count in windows[i:]):
            converged = windows[i][0]
            break
    per_30s = [sum(1 for x in rel if b * 30 <= x < (b + 1) * 30) * 2 for b in range(int(end // 30) + 1)]
    per_30s_429 = [sum(1 for x in tried if b * 30 <= x - t0 < (b + 1) * 30) for b in range(int(end // 30) + 1)]
    tail = windows[-1][1] if windows else 0
    return {
        "R": r, "seconds": seconds, "retry_after": retry_after, "exit": result.code, "accepted": len(accepted),
        "runner_429s": refused, "converged_after_s": converged,
        "last_sliding_minute_accepted": tail, "last_minute_ratio": round(tail / r, 3),
        "accepted_rpm_per_30s_bucket": per_30s, "429s_per_30s_bucket": per_30s_429,
        "simulator_responses": stats["responses"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["little", "rpm", "discover"])
    parser.add_argument("--cases", default="400:40:1,2000:200:2", help="little: N:C:T,…")
    parser.add_argument("--rpm", type=int, default=600)
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--task-seconds", type=float, default=1.0)
    parser.add_argument("--retry-after", type=float, default=1.0, help="discover: simulator Retry-After (-1: none)")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--defaults", action="store_true",
                        help="little: default settings apart from --rpm none (no --poll-rpm/--poll-interval tuning)")
    parser.add_argument("--naive", type=float, default=1.0, metavar="SECONDS",
                        help="little: also run bench/naive.py polling every SECONDS (0: do not)")
    parser.add_argument("--runner-args", default="", help="little: extra runner flags, e.g. '--downloads 16'")
    args = parser.parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-sat-"))
    print(f"machine: {machine()}")
    bytecode()  # as installed: the first measured process compiles nothing
    figures: list[dict[str, Any]] = []
    started = time.monotonic()
    if args.mode == "little":
        for i, case in enumerate(args.cases.split(",")):
            n, c, t = case.split(":")
            fig = little(int(n), int(c), float(t), workdir / f"little-{i}", shlex.split(args.runner_args),
                         defaults=args.defaults, naive_interval=args.naive or None)
            print(json.dumps(fig))
            figures.append(fig)
    elif args.mode == "rpm":
        fig = rpm_configured(args.rpm, args.seconds, workdir / "rpm", args.task_seconds)
        print(json.dumps(fig))
        figures.append(fig)
    else:
        retry_after = None if args.retry_after < 0 else args.retry_after
        fig = discover(args.rpm, args.seconds, workdir / "discover", args.task_seconds, retry_after)
        print(json.dumps(fig))
        figures.append(fig)
    print(f"elapsed {time.monotonic() - started:.0f} s; workdir {workdir}")
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
