"""Stop signals swept across a runner's start: does every one stop the run?

    .venv/bin/python -m bench.stopsweep --i2v --from 0.55 --to 0.8 --trials 150

A crash harness (``bench.crashlib``: a simulator process, no faults unless ``--faults``, tasks of
1.5 s, concurrency 4) plans a batch once; then, ``--trials`` times, a runner is started and sent one
stop signal (SIGTERM, SIGQUIT, SIGHUP or SIGINT, at random) at a random instant between ``--from``
and ``--to`` seconds after its start — the range to aim at is where the start-up ends and the engine begins (the log's
"no request was on the wire" lines give way to "finishing the submits on the wire"). A runner still
running 6 s after its signal did not take it as a stop: it is listed as unheeded (and sent SIGTERM
again). Every runner's output is in ``<workdir>/sweep.log``. A benchmark; no assertion.
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import subprocess
import tempfile
from pathlib import Path

from bench.crashlib import EVERY_FAULT, CrashHarness

SIGNALS = (signal.SIGTERM, signal.SIGQUIT, signal.SIGHUP, signal.SIGINT)
HEED_S = 6.0  # a graceful stop with nothing slow on the wire ends well within this


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--from", dest="lo", type=float, default=0.5, help="earliest signal, seconds after start")
    parser.add_argument("--to", dest="hi", type=float, default=0.8, help="latest signal, seconds after start")
    parser.add_argument("--trials", type=int, default=150)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--i2v", action="store_true", help="an image-to-video batch (bench.crashimages)")
    parser.add_argument("--faults", action="store_true", help="every fault knob of the crash torture on")
    parser.add_argument("--signal", choices=[s.name for s in SIGNALS], default=None, help="this one only")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    signals = SIGNALS if args.signal is None else (signal.Signals[args.signal],)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-stopsweep-"))
    unheeded: list[dict[str, object]] = []
    stopped = ended_first = 0
    with CrashHarness(workdir, jobs=3000, faults=EVERY_FAULT if args.faults else {}, seed=args.seed, task_seconds=1.5, concurrency=4,
                      i2v=args.i2v) as harness:
        harness.run_once(kill_after=10, sig=signal.SIGTERM, timeout=600)  # plan the batch once
        with (workdir / "sweep.log").open("a") as log:
            for trial in range(args.trials):
                at, sig = rng.uniform(args.lo, args.hi), rng.choice(signals)
                log.write(f"--- trial {trial} {sig.name} at {at:.3f}\n")
                log.flush()
                proc = subprocess.Popen(harness.runner_cmd(), env=harness.env(), stdin=subprocess.DEVNULL,
                                        stdout=log, stderr=log)
                try:
                    proc.wait(at)
                    ended_first += 1
                    continue
                except subprocess.TimeoutExpired:
                    proc.send_signal(sig)
                try:
                    proc.wait(HEED_S)
                    stopped += 1
                except subprocess.TimeoutExpired:
                    proc.send_signal(signal.SIGTERM)
                    try:
                        code = proc.wait(60)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        code = proc.wait()
                    unheeded.append({"trial": trial, "signal": sig.name, "at_s": round(at, 3),
                                     "exit_after_a_second_sigterm": code})
    print(json.dumps({"workdir": str(workdir), "i2v": args.i2v, "trials": args.trials, "stopped": stopped,
                      "ended_before_the_signal": ended_first, "unheeded": unheeded}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
