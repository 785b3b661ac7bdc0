"""Crash torture: ≥100 random SIGKILL / SIGTERM points across a 300-job manifest, every fault on.

    .venv/bin/python -m bench.crash                       # the published figures (~10 min)
    .venv/bin/python -m bench.crash --kills 10 --jobs 60  # a quick look
    .venv/bin/python -m bench.crash --operator            # plus what operators and the OS do (below)

A real simulator process (loopback, every fault knob of ``bench.crashlib.EVERY_FAULT``
on) and a real runner process, started again and again and killed at a random
instant — SIGKILL or SIGTERM, chosen at random — until ``--kills`` signals have
landed on a live runner; then the runner is run to completion. After every kill
the two independent books are compared (the simulator's billing vs the ledger),
so a duplicate payment would be caught at the moment it happened, not only at
the end. Prints the figures; exits 1 if a paid duplicate, an unrecorded paid
task or a bad file is found. A benchmark, never a timed assertion.

With ``--operator`` the signals are SIGKILL, SIGTERM, SIGHUP and SIGQUIT, and at
random a run is paused (SIGSTOP past the read timeout, then SIGCONT), the manifest
is edited before a run (prompts changed, jobs dropped, jobs added) or the run starts
from another working directory; at the end a clean ``collect`` runs, and the figures
add paid videos without a file, the spend by the simulator's books and whether the
(fake, distinctive) API key reached any file under the state dir or any output.
"""

from __future__ import annotations

import argparse
import json
import signal
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from bench.crashlib import EVERY_FAULT, OPERATOR_SIGNALS, CrashHarness, Verdict
from bench.procs import machine


def _done_fraction(harness: CrashHarness) -> float:
    db_path = harness.state / "ledger.db"
    if not db_path.exists():
        return 0.0
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        finished, total = db.execute(
            "SELECT count(*) FILTER (WHERE state IN ('done', 'failed', 'lost', 'in_doubt')), count(*) FROM jobs"
        ).fetchone()
    finally:
        db.close()
    return finished / total if total else 0.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=300)
    parser.add_argument("--kills", type=int, default=110, help="signals that must land on a live runner")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--task-seconds", type=float, default=1.5)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--min-after", type=float, default=0.4, help="earliest kill, seconds after start")
    parser.add_argument("--max-after", type=float, default=2.5, help="latest kill, seconds after start")
    parser.add_argument("--sigterm-share", type=float, default=0.4, help="share of kills that are SIGTERM")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this file")
    parser.add_argument("--operator", action="store_true",
                        help="also SIGHUP, SIGQUIT, SIGSTOP pauses, manifest edits and runs from another cwd")
    parser.add_argument("--pause-share", type=float, default=0.2, help="--operator: share of runs paused")
    parser.add_argument("--edit-share", type=float, default=0.1, help="--operator: share of runs after an edit")
    parser.add_argument("--elsewhere-share", type=float, default=0.2,
                        help="--operator: share of runs from another working directory")
    args = parser.parse_args(argv)

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-crash-"))
    started = time.monotonic()
    print(f"machine: {machine()}")
    print(f"workdir: {workdir}")
    landed: Counter[str] = Counter()
    attempts = 0
    by_decile: Counter[int] = Counter()
    worst_dup = worst_unrecorded = 0
    codes: list[int | None] = []
    actions: Counter[str] = Counter()
    with CrashHarness(workdir, jobs=args.jobs, faults=EVERY_FAULT, seed=args.seed,
                      task_seconds=args.task_seconds, concurrency=args.concurrency) as harness:
        while sum(landed.values()) < args.kills:
            progress = _done_fraction(harness)
            if progress >= 1.0:
                print("every job finished before enough kills landed; use more jobs or a longer task time")
                break
            if args.operator:
                sig = harness.rng.choice(OPERATOR_SIGNALS)
                code, did = harness.operator_round(
                    sig=sig, pause=harness.rng.random() < args.pause_share,
                    edit=attempts > 0 and harness.rng.random() < args.edit_share,
                    elsewhere=harness.rng.random() < args.elsewhere_share,
                    min_after=args.min_after, max_after=args.max_after,
                )
                actions.update(d for d in did if not d.startswith("SIG") or d == "SIGSTOP pauses")
            else:
                sig = signal.SIGTERM if harness.rng.random() < args.sigterm_share else signal.SIGKILL
                code = harness.run_once(kill_after=harness.rng.uniform(args.min_after, args.max_after), sig=sig)
            attempts += 1
            codes.append(code)
            if harness.last_kill_landed:
                landed[signal.Signals(sig).name] += 1
                by_decile[min(9, int(progress * 10))] += 1
            check = harness.verdict()  # after every kill: nothing paid twice, nothing billed unrecorded
            worst_dup = max(worst_dup, check.paid_duplicates)
            worst_unrecorded = max(worst_unrecorded, check.unrecorded_paid)
        finals = 0
        for _ in range(20):
            code = harness.run_once(kill_after=None, timeout=600)
            finals += 1
            codes.append(code)
            if code in (0, 1, 4):
                break
        operator = None
        if args.operator:  # a final clean collect: every paid task of every job the ledger knows
            codes.append(harness.run_once(kill_after=None, timeout=600, command="collect"))
            operator = harness.operator_verdict(dict(actions), codes)
        verdict: Verdict = harness.verdict()
        stats = harness.sim_stats()
    elapsed = time.monotonic() - started
    responses = stats.get("responses", {})
    figures = {
        "jobs": args.jobs,
        "kills_landed": sum(landed.values()),
        "kills_by_signal": dict(landed),
        "runner_starts": attempts + finals,
        "kill_points_by_progress_decile": {f"{d * 10}-{d * 10 + 10}%": by_decile[d] for d in range(10)},
        "paid_duplicates": verdict.paid_duplicates,
        "paid_duplicates_worst_during": worst_dup,
        "unrecorded_paid": verdict.unrecorded_paid,
        "unrecorded_paid_worst_during": worst_unrecorded,
        "in_doubt": verdict.in_doubt,
        "lost": verdict.lost,
        "failed": verdict.failed,
        "done": verdict.done,
        "files_verified": verdict.files_verified,
        "files_bad": verdict.files_bad,
        "billed_tasks": verdict.accepted_total,
        "final_counts": verdict.counts,
        "simulator_responses": responses,
        "elapsed_s": round(elapsed, 1),
        "exit_codes": dict(Counter(str(c) for c in codes)),
    }
    if operator is not None:
        figures["operator"] = {
            "actions": operator.rounds,
            "paid_without_file": operator.paid_without_file,
            "orphaned_without_file": operator.orphaned_without_file,
            "held_in_doubt": operator.held_in_doubt,
            "outstanding_in_the_manifest": operator.outstanding,
            "spent_usd_by_the_simulator_books": operator.spent_usd,
            "key_leaks": operator.key_leaks,
        }
    print(json.dumps(figures, indent=2))
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    ok = verdict.paid_duplicates == 0 and verdict.unrecorded_paid == 0 and verdict.files_bad == 0 and worst_dup == 0
    ok = ok and verdict.files_verified == verdict.done
    accounted = verdict.done + verdict.failed + verdict.lost + verdict.in_doubt == verdict.jobs
    if operator is not None:  # jobs an edit dropped before they were sent stay pending, rightly
        ok = ok and operator.paid_without_file == 0 and not operator.key_leaks
        accounted = operator.outstanding == 0
    print(f"verdict: {'OK' if ok and accounted else 'VIOLATION'}"
          f" — {verdict.paid_duplicates} paid duplicates, {verdict.unrecorded_paid} unrecorded paid tasks,"
          f" {verdict.in_doubt} in doubt (held), {verdict.lost} lost, {verdict.files_verified} files verified"
          f" ({sum(landed.values())} kills in {elapsed:.0f} s)")
    return 0 if ok and accounted else 1


if __name__ == "__main__":
    sys.exit(main())
