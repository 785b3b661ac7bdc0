"""Several runners, one provider limit: the batch time of 1, 2 and 4 runners on one PostgreSQL ledger.

    .venv/bin/python -m bench.multihost                   # the published figures (~7 min at load 9)
    .venv/bin/python -m bench.multihost --rpm 20          # with a submit rate limit too (see below)
    .venv/bin/python -m bench.multihost --runners 1,2 --jobs 32 --repeat 1   # a quick look

N runner processes (``runner run --ledger URL``, all started at once) share one batch and one
provider limit: ``--concurrency C`` tasks outstanding for the account, counted in the database
across every runner. The batch time of N runners should stay at the limit — about the 1-runner
time, ⌈jobs/C⌉·T — not be divided (they share one limit) nor multiplied (they must not stall
each other). The same batch run by one runner on a SQLite ledger is the baseline.

Task times are realistic, scaled down: a Kling v3.0 task takes minutes (``--real-task-seconds``,
150 s); here every time the provider and the runner wait is divided by ``--scale`` (50), so a task
takes 3 s and the runner's poll interval (3 s by default) 0.06 s. The simulator (loopback, a
process of its own, no faults) counts each account's peak of outstanding tasks
(``max_active_by_account``): it must never pass C.

Three times per batch. **Span**: from the first submit to the last video stored (the ledger's
``submitted_at`` and ``finished_at``), the figure to hold against the limit's ⌈jobs/C⌉·T; then,
from the start of the processes (their start-up and planning included), **all stored** and
**last exit** (the last process gone). The last two differ when several runners share a batch:
a runner with nothing left waits while others hold work (their tasks come to it if a lease
expires) and re-checks every lease TTL / 4 (15 s; the TTL is not scaled, so lease renewals cost
the database what they would in a real batch of this size).

The cost of the database per job comes from ``pg_stat_database`` of the batch's own database,
read before and after: transactions committed (+ rolled back) per job and the time the server
spent executing statements (``active_time``, ms) per job. Every figure on a throwaway server of
its own (``runner.testing_pg``: initdb in a temporary directory, fsync on, loopback).

``--rpm R`` configures R submits a minute on the runners and on the simulator (which answers a
submit past R in a sliding minute with 429): the runners share R through the database's token
bucket, so the batch time stays at what R allows and the simulator's 429s stay at zero for every
N. Prints the figures (and ``--json FILE``); a benchmark, never a timed assertion.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.crashlib import CrashHarness
from bench.procs import machine
from runner.testing_pg import TempPostgres

DEFAULT_POLL_INTERVAL = 3.0  # the runner's default (runner/config.py), scaled like the task time


def _pg_counters(server: TempPostgres, dbname: str) -> dict[str, float]:
    import psycopg

    with psycopg.connect(server.url("postgres"), autocommit=True) as conn:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        row = conn.execute(
            "SELECT xact_commit, xact_rollback, active_time FROM pg_stat_database WHERE datname = %s", (dbname,)
        ).fetchone()
    if row is None:
        return {"xacts": 0.0, "active_ms": 0.0}
    return {"xacts": float(row[0] + row[1]), "active_ms": float(row[2] or 0.0)}


def one_batch(workdir: Path, *, runners: int, server: TempPostgres | None, args: argparse.Namespace,
              tag: str) -> dict[str, Any]:
    """Run the batch with ``runners`` processes (on PostgreSQL when ``server``, else SQLite); its figures."""
    task_seconds = args.real_task_seconds / args.scale
    dbname = f"b_{tag}"
    url = server.create_database(dbname) if server is not None else None
    faults: dict[str, Any] = {"rpm": args.rpm} if args.rpm is not None else {}
    with CrashHarness(workdir, jobs=args.jobs, faults=faults, seed=args.seed, task_seconds=task_seconds,
                      concurrency=args.concurrency, read_timeout=30.0, runners=runners, ledger_url=url) as harness:
        harness.extra_args = ["--poll-interval", f"{DEFAULT_POLL_INTERVAL / args.scale:g}",
                              "--rpm", str(args.rpm) if args.rpm is not None else "none"]
        before = _pg_counters(server, dbname) if server is not None else None
        started_wall = time.time()
        started = time.monotonic()
        procs = [harness.start_runner(index) for index in range(runners)]
        codes = [proc.proc.wait(timeout=args.timeout) for proc in procs]
        wall = time.monotonic() - started
        time.sleep(0.5)  # backends flush their statistics as they exit
        after = _pg_counters(server, dbname) if server is not None else None
        stats = harness.sim_stats()
        verdict = harness.verdict()
        outstanding = harness.max_outstanding()
        rows = harness.ledger_rows()
    finished = [float(row["finished_at"]) for row in rows if row["finished_at"] is not None]
    submitted = [float(row["submitted_at"]) for row in rows if row["submitted_at"] is not None]
    stored = max(finished) - started_wall if finished else float("nan")
    span = max(finished) - min(submitted) if finished and submitted else float("nan")
    ideal = math.ceil(args.jobs / args.concurrency) * task_seconds
    figures: dict[str, Any] = {
        "ledger": "postgresql" if server is not None else "sqlite",
        "runners": runners,
        "span_s": round(span, 2),
        "stored_s": round(stored, 2),
        "exit_s": round(wall, 2),
        "ideal_s": round(ideal, 2),
        "ideal_over_span": round(ideal / span, 3),
        "exit_codes": codes,
        "done": verdict.done,
        "paid_duplicates": verdict.paid_duplicates,
        "billed_tasks": stats["accepted_total"],
        "max_outstanding_at_the_provider": outstanding,
        "submit_429s": sum(n for kind, n in stats["responses"].items() if kind in ("submit:rpm_limited",)),
        "polls_per_job": round(stats["polls"] / max(1, args.jobs), 2),
    }
    if before is not None and after is not None:
        figures["db_xacts_per_job"] = round((after["xacts"] - before["xacts"]) / args.jobs, 1)
        figures["db_active_ms_per_job"] = round((after["active_ms"] - before["active_ms"]) / args.jobs, 2)
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=64)
    parser.add_argument("--concurrency", type=int, default=8, help="the provider's limit, shared by every runner")
    parser.add_argument("--rpm", type=int, default=None, help="submits a minute (runners and simulator); default none")
    parser.add_argument("--real-task-seconds", type=float, default=150.0, help="a real task's time, before scaling")
    parser.add_argument("--scale", type=float, default=50.0, help="every wait divided by this")
    parser.add_argument("--runners", default="1,2,4", help="the runner counts to measure, comma-separated")
    parser.add_argument("--repeat", type=int, default=2, help="measure each case this many times")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this file")
    args = parser.parse_args(argv)
    counts = [int(n) for n in args.runners.split(",")]
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-multihost-"))
    print(f"machine: {machine()}")
    print(f"workdir: {workdir}")
    print(f"batch: {args.jobs} jobs, concurrency {args.concurrency}, rpm {args.rpm or 'none'};"
          f" task {args.real_task_seconds:g} s / {args.scale:g} = {args.real_task_seconds / args.scale:g} s,"
          f" poll interval {DEFAULT_POLL_INTERVAL / args.scale:g} s")
    results: list[dict[str, Any]] = []
    with TempPostgres.start() as server:
        for rep in range(args.repeat):
            cases: list[tuple[str, int, TempPostgres | None]] = [("sqlite1", 1, None)]
            cases += [(f"pg{n}", n, server) for n in counts]
            for name, n, pg in cases:
                figures = one_batch(workdir / f"{name}-{rep}", runners=n, server=pg, args=args, tag=f"{name}_{rep}")
                figures["repeat"] = rep
                results.append(figures)
                print(json.dumps(figures), flush=True)
    print()
    print("| ledger | runners | span s | ideal/span | all stored s | last exit s | max outstanding (limit)"
          " | DB xacts/job | DB ms/job |")
    print("|---|---|---|---|---|---|---|---|---|")
    for f in results:
        print(f"| {f['ledger']} | {f['runners']} | {f['span_s']} | {f['ideal_over_span']} | {f['stored_s']} |"
              f" {f['exit_s']} |"
              f" {f['max_outstanding_at_the_provider']} ({args.concurrency}) | {f.get('db_xacts_per_job', 'n/a')} |"
              f" {f.get('db_active_ms_per_job', 'n/a')} |")
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
