"""Crash torture: ≥100 random SIGKILL / SIGTERM points across a 300-job manifest, every fault on.

    .venv/bin/python -m bench.crash                       # the published figures (~10 min)
    .venv/bin/python -m bench.crash --kills 10 --jobs 60  # a quick look
    .venv/bin/python -m bench.crash --operator            # plus what operators and the OS do (below)
    .venv/bin/python -m bench.crash --runners 3           # three runners on one PostgreSQL ledger (below)
    .venv/bin/python -m bench.crash --i2v                 # an image-to-video batch (below)

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
from another working directory; and before a run the state folder may be moved
(``--move-share``: one run with the old ``--state``, as an unchanged cron line has it,
then the new place from then on) or the manifest copied to a folder of its own and run
there (``--copy-share``) — each a new ledger for planned jobs, which the book of this
host's ledgers must refuse (exit 2, nothing paid; a share ``--kill-refused-share`` of
those runs is also signalled at a random instant, and must pay nothing either:
``bench.crashmoves``). At the end a clean ``collect`` runs, and the figures
add paid videos without a file, the spend by the simulator's books and whether the
(fake, distinctive) API key reached any file under a state dir or any output.

With ``--runners N`` (N > 1), N runner processes share the batch on one PostgreSQL ledger —
``--ledger-url URL``, or a throwaway server of its own (``runner.testing_pg``) — with a lease TTL
of ``--lease-ttl`` seconds; a random live one is killed at its random instant and started again
(``CrashHarness.swarm_torture``; a share ``--startup-share`` of the kill instants count from the
process start, the rest from when its lease shows in the ledger). A traceback in any runner's
output fails the run. The figures add the provider's peak of outstanding tasks against
the concurrency limit: for tasks whose id was answered (must stay at the limit) and for all billed
tasks (those of in-doubt jobs may add to it).

With ``--i2v`` the batch is image-to-video (``kling-v3.0-std-i2v``): every row names an input image —
a PNG or JPEG file the harness writes beside the manifest (sent inline as a ``data:`` URI) or an
``https://`` URL — and the books are compared body by body as the runner sends them
(``bench.crashbooks``). With ``--operator`` too, a share ``--image-share`` of the runs also edits or
renames an input image before the run, or rewrites one or takes one away (put back after the run)
while it runs (``bench.crashimages``). The figures add ``unjudged_rows``: ledger rows whose wire body
could not be rebuilt (must be 0; their billed tasks would count as duplicates).

Every single-runner torture also lists ``stop_signals_unheeded``: a SIGTERM, SIGHUP or SIGQUIT that
landed on a live runner which then ran on for more than ``UNHEEDED_S`` seconds (a graceful stop ends
once the POSTs on the wire are answered). It is reported, not part of the money verdict.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench.crashimages import IMAGE_ACTIONS
from bench.crashlib import EVERY_FAULT, OPERATOR_SIGNALS, CrashHarness, Verdict
from bench.procs import machine
from runner.testing_pg import TempPostgres

# A graceful stop lets the POSTs on the wire finish (read timeout 1.5 s, a slow answer 3 s) and ends: a
# runner still running this long after a SIGTERM, SIGHUP, SIGQUIT or SIGINT did not take it as a stop.
UNHEEDED_S = 15.0


def _verdict_figures(by_decile: Counter[int], verdict: Verdict, worst_dup: int, worst_unrecorded: int) -> dict[str, Any]:
    """What every torture prints of its end: where the kills landed, and the simulator's books against the ledger."""
    return {
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
        "unjudged_rows": verdict.unjudged,
    }

def _swarm(args: argparse.Namespace, workdir: Path) -> int:
    """``--runners N``: N runners on one PostgreSQL ledger, killed at random; the figures and the verdict."""
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        url = args.ledger_url
        if url is None:
            url = stack.enter_context(TempPostgres.start()).create_database("crash")
        harness = stack.enter_context(CrashHarness(
            workdir, jobs=args.jobs, faults=EVERY_FAULT, seed=args.seed, task_seconds=args.task_seconds,
            concurrency=args.concurrency, runners=args.runners, ledger_url=url, lease_ttl=args.lease_ttl,
            i2v=args.i2v))
        result = harness.swarm_torture(kills=args.kills, min_after=args.min_after, max_after=args.max_after,
                                       startup_share=args.startup_share, timeout=args.timeout)
        stats = harness.sim_stats()
    verdict = result.verdict
    assert verdict is not None
    elapsed = time.monotonic() - started
    by_decile = Counter(min(9, int(point * 10)) for point in result.kill_points)
    figures: dict[str, Any] = {
        "runners": args.runners,
        "jobs": args.jobs,
        "seed": args.seed,
        "kills_landed": sum(result.landed.values()),
        "kills_by_signal": dict(result.landed),
        "runner_starts": result.starts,
        "kill_phase_s": result.kill_phase_s,
        "finish_s": result.finish_s,
        **_verdict_figures(by_decile, verdict, result.worst_duplicates, result.worst_unrecorded),
        "billed_unrecorded_held_in_doubt": verdict.billed_unrecorded,
        "concurrency_limit": args.concurrency,
        "max_outstanding_answered": result.max_answered,
        "max_outstanding_all_billed": result.max_outstanding,
        "final_counts": verdict.counts,
        "simulator_responses": stats.get("responses", {}),
        "elapsed_s": round(elapsed, 1),
        "exit_codes": dict(Counter(str(c) for c in result.codes)),
    }
    print(json.dumps(figures, indent=2))
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    ok = verdict.paid_duplicates == 0 == result.worst_duplicates and verdict.unrecorded_paid == 0 == result.worst_unrecorded
    ok = ok and verdict.files_bad == 0 and verdict.files_verified == verdict.done and verdict.unjudged == 0
    ok = ok and verdict.done + verdict.failed + verdict.lost + verdict.in_doubt == verdict.jobs == args.jobs
    ok = ok and result.max_answered <= args.concurrency
    ok = ok and result.max_outstanding <= args.concurrency + verdict.billed_unrecorded
    print(f"verdict: {'OK' if ok else 'VIOLATION'} (seed {args.seed})"
          f" — {verdict.paid_duplicates} paid duplicates, {verdict.unrecorded_paid} unrecorded paid tasks,"
          f" {verdict.in_doubt} in doubt (held), {verdict.lost} lost, {verdict.files_verified} files verified,"
          f" at most {result.max_answered} answered tasks outstanding (limit {args.concurrency})"
          f" ({sum(result.landed.values())} kills over {args.runners} runners in {elapsed:.0f} s)")
    return 0 if ok else 1


def _stop_signals_not_ignored() -> None:
    """Started in the background by a shell without job control (``bench.crash … &`` in a script), this process has
    SIGINT and SIGQUIT ignored, and so would every runner it starts: the runner keeps a stop signal it was started with
    ignored (the operator's choice), so each SIGQUIT the torture sends would be ignored too and counted as unheeded
    (2026-12-06: two of them, and no SIGQUIT handled at all in that run). The runners get the default back."""
    for sig in (signal.SIGINT, signal.SIGQUIT):
        if signal.getsignal(sig) is signal.SIG_IGN:
            signal.signal(sig, signal.SIG_DFL if sig is signal.SIGQUIT else signal.default_int_handler)
            print(f"note: {sig.name} was ignored in this process (started in the background?): restored for the"
                  " runners it starts")


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
                        help="also SIGHUP, SIGQUIT, SIGSTOP pauses, manifest edits, runs from another cwd, the state"
                             " folder moved and the manifest copied")
    parser.add_argument("--pause-share", type=float, default=0.2, help="--operator: share of runs paused")
    parser.add_argument("--edit-share", type=float, default=0.1, help="--operator: share of runs after an edit")
    parser.add_argument("--elsewhere-share", type=float, default=0.2,
                        help="--operator: share of runs from another working directory")
    parser.add_argument("--move-share", type=float, default=0.05,
                        help="--operator: share of runs after the state folder moved (and a refused run at the old one)")
    parser.add_argument("--copy-share", type=float, default=0.05,
                        help="--operator: share of runs after the manifest copied and run in another folder (refused)")
    parser.add_argument("--kill-refused-share", type=float, default=0.3,
                        help="--operator: share of those refused runs signalled at a random instant")
    parser.add_argument("--runners", type=int, default=1,
                        help="runner processes on one PostgreSQL ledger (more than 1: the swarm torture)")
    parser.add_argument("--ledger-url", default=None,
                        help="--runners: the PostgreSQL ledger (default: a throwaway server of its own)")
    parser.add_argument("--lease-ttl", type=float, default=1.0, help="--runners: RUNNER_LEASE_TTL, seconds")
    parser.add_argument("--startup-share", type=float, default=0.25,
                        help="--runners: share of kills timed from the process start (the rest from its lease)")
    parser.add_argument("--timeout", type=float, default=3600, help="--runners: give up after this many seconds")
    parser.add_argument("--i2v", action="store_true",
                        help="an image-to-video batch: input images written by the harness (inline) and URLs")
    parser.add_argument("--image-share", type=float, default=0.3,
                        help="--i2v --operator: share of runs with an input image edited, renamed or taken away")
    args = parser.parse_args(argv)
    if args.ledger_url is not None and args.runners < 2:
        parser.error("--ledger-url goes with --runners N (N > 1)")
    if args.runners > 1 and args.operator:
        parser.error("--operator runs one runner; leave out --runners")

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-crash-"))
    started = time.monotonic()
    print(f"machine: {machine()}")
    _stop_signals_not_ignored()
    print(f"workdir: {workdir}")
    if args.runners > 1:
        return _swarm(args, workdir)
    landed: Counter[str] = Counter()
    attempts = 0
    by_decile: Counter[int] = Counter()
    worst_dup = worst_unrecorded = 0
    codes: list[int | None] = []
    actions: Counter[str] = Counter()
    unheeded: list[str] = []  # stop signals after which the runner went on (see UNHEEDED_S)
    with CrashHarness(workdir, jobs=args.jobs, faults=EVERY_FAULT, seed=args.seed,
                      task_seconds=args.task_seconds, concurrency=args.concurrency, i2v=args.i2v) as harness:
        while sum(landed.values()) < args.kills:
            progress = harness.progress()
            if progress >= 1.0:
                print("every job finished before enough kills landed; use more jobs or a longer task time")
                break
            if args.operator:
                sig = harness.rng.choice(OPERATOR_SIGNALS)
                code, did = harness.operator_round(
                    sig=sig, pause=harness.rng.random() < args.pause_share,
                    edit=attempts > 0 and harness.rng.random() < args.edit_share,
                    elsewhere=harness.rng.random() < args.elsewhere_share,
                    move=attempts > 0 and harness.rng.random() < args.move_share,
                    copy=attempts > 0 and harness.rng.random() < args.copy_share,
                    kill_refused=harness.rng.random() < args.kill_refused_share,
                    min_after=args.min_after, max_after=args.max_after,
                    image=(harness.rng.choice(IMAGE_ACTIONS)
                           if args.i2v and harness.rng.random() < args.image_share else None),
                )
                actions.update(d for d in did if not d.startswith("SIG") or d == "SIGSTOP pauses")
            else:
                sig = signal.SIGTERM if harness.rng.random() < args.sigterm_share else signal.SIGKILL
                code = harness.run_once(kill_after=harness.rng.uniform(args.min_after, args.max_after), sig=sig)
            attempts += 1
            codes.append(code)
            if harness.last_kill_landed:
                landed[signal.Signals(sig).name] += 1
                if sig != signal.SIGKILL and (harness.last_stop_s or 0.0) > UNHEEDED_S:
                    unheeded.append(f"{signal.Signals(sig).name} at run {attempts}: {harness.last_stop_s:.0f} s")
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
        **_verdict_figures(by_decile, verdict, worst_dup, worst_unrecorded),
        "final_counts": verdict.counts,
        "simulator_responses": responses,
        "elapsed_s": round(elapsed, 1),
        "exit_codes": dict(Counter(str(c) for c in codes)),
        "stop_signals_unheeded": unheeded,
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
    ok = ok and verdict.files_verified == verdict.done and verdict.unjudged == 0
    accounted = verdict.done + verdict.failed + verdict.lost + verdict.in_doubt == verdict.jobs
    if operator is not None:  # jobs an edit dropped before they were sent stay pending, rightly
        ok = ok and operator.paid_without_file == 0 and not operator.key_leaks
        accounted = operator.outstanding == 0
    print(f"verdict: {'OK' if ok and accounted else 'VIOLATION'}"
          f" — {verdict.paid_duplicates} paid duplicates, {verdict.unrecorded_paid} unrecorded paid tasks,"
          f" {verdict.in_doubt} in doubt (held), {verdict.lost} lost, {verdict.files_verified} files verified"
          + (f", {verdict.unjudged} rows unjudged" if args.i2v else "")
          + (f", {len(unheeded)} stop signal(s) unheeded" if unheeded else "")
          + f" ({sum(landed.values())} kills in {elapsed:.0f} s)")
    return 0 if ok and accounted else 1


if __name__ == "__main__":
    sys.exit(main())
